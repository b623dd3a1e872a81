#!/usr/bin/env bash
# What N idle services cost: threads, descriptors and resident memory of
# tierlb (the image's static build) and of HAProxy nbthread 1 with the same
# services as `listen` sections, each read SETTLE seconds after start.
#
#   scripts/idle-services.sh [N [RUNS [REV]]]    # defaults: 200 services, 3 runs, the work tree
#
# REV (a git revision) builds tierlb as it was there, from `git archive`.
# Every service listens on 127.0.0.1 with one static backend at 127.0.0.1:1;
# nothing connects, health checks are off. Each run starts both proxies in
# turn, reads /proc and ends them by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200}
runs=${2:-3}
rev=${3:-}
settle=${SETTLE:-8}
base_tierlb=${BASE_PORT:-21000} # below the ephemeral ports (32768 up), which clients and TIME_WAIT hold
base_haproxy=$((base_tierlb + n + 100))

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

src=.
if [[ -n $rev ]]; then
  mkdir "$tmp/src"
  git archive "$rev" | tar -x -C "$tmp/src"
  src=$tmp/src
fi
(cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp/tierlb" ./cmd/tierlb)
command -v haproxy >/dev/null || { echo "haproxy is missing: apt-get install haproxy" >&2; exit 1; }

{
  printf 'admin:\n  listen: ""\nlog:\n  level: warn\n  access: false\ndocker:\n  enabled: "false"\nservices:\n'
  for ((i = 0; i < n; i++)); do
    printf '  - name: svc%d\n    listen: 127.0.0.1:%d\n    backends:\n      static: ["127.0.0.1:1"]\n    health:\n      type: none\n' \
      "$i" $((base_tierlb + i))
  done
} >"$tmp/tierlb.yaml"
{
  printf 'global\n    nbthread 1\n\ndefaults\n    mode tcp\n    timeout connect 2s\n    timeout client 1h\n    timeout server 1h\n'
  for ((i = 0; i < n; i++)); do
    printf '\nlisten svc%d\n    bind 127.0.0.1:%d\n    server svc%d 127.0.0.1:1\n' "$i" $((base_haproxy + i)) "$i"
  done
} >"$tmp/haproxy.cfg"

# measure NAME CMD...: start, wait, print one row, end it.
measure() {
  local name=$1
  shift
  "$@" >"$tmp/$name.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  sleep "$settle"
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "$name exited early:" >&2
    cat "$tmp/$name.log" >&2
    exit 1
  fi
  local st=/proc/$pid/status
  local threads rss anon file fds
  threads=$(awk '/^Threads:/ {print $2}' "$st")
  rss=$(awk '/^VmRSS:/ {print $2}' "$st")
  anon=$(awk '/^RssAnon:/ {print $2}' "$st")
  file=$(awk '/^RssFile:/ {print $2}' "$st")
  fds=$(ls "/proc/$pid/fd" | wc -l)
  awk -v n="$name" -v t="$threads" -v f="$fds" -v r="$rss" -v a="$anon" -v fi="$file" \
    'BEGIN { printf "%-16s %4d %7d %7.1f %7.1f %7.1f\n", n, t, f, r / 1000, a / 1000, fi / 1000 }'
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}

echo "$n idle services, read ${settle}s after start; MB = 10^6 bytes"
printf '%-16s %4s %7s %7s %7s %7s\n' proxy thr fds RSS anon file
for ((r = 1; r <= runs; r++)); do
  measure tierlb "$tmp/tierlb" run --config "$tmp/tierlb.yaml"
  measure haproxy-nbthr1 haproxy -db -f "$tmp/haproxy.cfg"
done
