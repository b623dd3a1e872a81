#!/usr/bin/env bash
# Measure the admin surface of a real tierlb at scale: S services of K static
# backends each (default 100 x 100 = 10,000; health off), a little traffic
# through one service so its rates move, then the size and time of /metrics
# (plain and gzip, as Prometheus asks for it), the status page, the services
# API, and tierlb status, with tierlb's RSS. Everything on 127.0.0.0/8.
#
#   scripts/admin-scale.sh [SERVICES] [PER_SERVICE]
#   TIERLB_BIN=/path/to/tierlb scripts/admin-scale.sh    # measure another build
set -euo pipefail
cd "$(dirname "$0")/.."
S=${1:-100}
K=${2:-100}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

if [[ -n "${TIERLB_BIN:-}" ]]; then cp "$TIERLB_BIN" "$work/tierlb"; else go build -o "$work/tierlb" ./cmd/tierlb; fi
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
admin=127.0.0.1:$(port)
echo_port=$(port)
# One real backend for the traffic: answers every connection with 1 KiB.
python3 - "$echo_port" <<'PY' &
import socket, sys, threading
ln = socket.socket(); ln.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ln.bind(("127.0.0.1", int(sys.argv[1]))); ln.listen(128)
def serve(c):
    try:
        c.recv(4096); c.sendall(b"x" * 1024)
    finally:
        c.close()
while True:
    c, _ = ln.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
pids+=($!)

# Service s listens on 127.3.H.L:P, its own loopback address: nothing else
# binds there, whatever the other processes of the machine use.
P=$(port)
{
  echo "admin: {listen: \"$admin\", pprof: true}"
  echo "log: {level: warn, access: false}"
  echo "docker: {enabled: \"false\"}"
  echo "services:"
  n=0
  for ((s = 0; s < S; s++)); do
    printf '  - name: svc-%03d\n    listen: 127.3.%d.%d:%d\n    health: {type: none}\n    backends:\n      static:\n' "$s" $((s >> 8)) $(((s & 255) + 1)) "$P"
    if ((s == 0)); then echo "        - 127.0.0.1:$echo_port"; fi
    for ((i = 0; i < K - (s == 0); i++)); do
      n=$((n + 1))
      echo "        - 127.1.$((n >> 8 & 255)).$((n & 255)):8080"
    done
  done
} >"$work/tierlb.yaml"

start=$(date +%s.%N)
"$work/tierlb" run --config "$work/tierlb.yaml" 2>"$work/tierlb.log" &
pids+=($!)
tierlb_pid=$!
until curl -fsS "http://$admin/readyz" >/dev/null 2>&1; do
  if ! kill -0 "$tierlb_pid" 2>/dev/null; then cat "$work/tierlb.log" >&2; exit 1; fi
  sleep 0.05
done
echo "ready after $(echo "$(date +%s.%N) - $start" | bc) s with $((S * K)) backends"

rss=$(awk '/VmRSS/ {print $2}' "/proc/$tierlb_pid/status")
echo "RSS at ready ${rss} KiB"

# Traffic through svc-000 to its one live backend while the rest runs: 20
# connections a second at most, 1,500 at most, 90 s at most.
(
  end=$((SECONDS + 90))
  for ((i = 0; i < 1500 && SECONDS < end; i++)); do
    curl -s --max-time 2 "http://127.3.0.1:$P/" -o /dev/null || true
    sleep 0.05
  done
) &
pids+=($!)
sleep 25 # two history samples
rss=$(awk '/VmRSS/ {print $2}' "/proc/$tierlb_pid/status")
echo "RSS after 25 s ${rss} KiB ($((rss * 1024 / (S * K))) bytes per backend)"
# The live heap after a collection says more than RSS, which follows GOGC.
heap=$(curl -fsS "http://$admin/debug/pprof/heap?gc=1&debug=1" | awk '/^# HeapAlloc/ {print $4}')
echo "live heap after a GC: $((heap / 1024)) KiB ($((heap / (S * K))) bytes per backend)"

# CPU time tierlb spends on a request, from /proc (the machine may be
# loaded: wall time says little then); it includes what else tierlb does
# meanwhile, which here is little.
ticks() { awk '{print $14 + $15}' "/proc/$tierlb_pid/stat"; }
hz=$(getconf CLK_TCK)
measure() { # name, url, extra curl args
  local name=$1 url=$2; shift 2
  for run in 1 2 3; do
    local t0 t1 out
    t0=$(ticks)
    out=$(curl -fsS -o /dev/null -w "%{size_download} bytes in %{time_total} s" "$@" "$url")
    t1=$(ticks)
    echo "$name: $out, tierlb CPU $(((t1 - t0) * 1000 / hz)) ms"
  done
}
measure "/metrics" "http://$admin/metrics"
measure "/metrics gzip" "http://$admin/metrics" -H 'Accept-Encoding: gzip'
measure "/ (default)" "http://$admin/"
measure "/?page=1" "http://$admin/?page=1"
measure "/?service=svc-000" "http://$admin/?service=svc-000"
measure "/api/v1/services" "http://$admin/api/v1/services"
measure "/api/v1/services?state=down" "http://$admin/api/v1/services?state=down"
curl -fsS "http://$admin/api/v1/services?service=svc-000&backend=127.0.0.1" | python3 -c '
import json, sys
s = json.load(sys.stdin)[0]
b = s["backends"][0]
print("svc-000 rates:", json.dumps(s.get("rates")))
print("its live backend:", b["total_connections"], "connections,", json.dumps(b.get("rates")))'
/usr/bin/time -f "tierlb status: %e s, %M KiB max RSS" "$work/tierlb" status --admin "$admin" >/dev/null
"$work/tierlb" status --admin "$admin" --service svc-000 --backend 127.0.0.1: | cut -c1-200
