#!/bin/sh
# Bring up examples/three-tier (2 web, 3 app, 2 db replicas), check that the
# published app port rotates over the three app containers and that the
# tiers call each other through tierlb (web -> app:8081 -> db:5432), rotating
# exactly on every tier, then tear everything down (containers, networks,
# volumes and the two images this script built).
# Needs docker and docker-compose (v1.29) or `docker compose` (v2); no registry.
#
#   scripts/three-tier-check.sh            # exit 0 when every rotation is exact
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
demo="$root/examples/three-tier/demo.sh"
trap '"$demo" down >/dev/null 2>&1 || true' EXIT
"$demo" >/dev/null

# whoami answers with its container name (Docker's DNS tells it).
names=""
for i in 1 2 3 4 5 6 7 8 9; do
	name=$(curl -s -m 2 127.0.0.1:8081/name)
	echo "request $i: $name"
	names="$names $name"
done
set -- $names
distinct=$(printf '%s\n' "$@" | sort -u | wc -l)
if [ "$distinct" -ne 3 ]; then
	echo "want 3 app containers in rotation, got $distinct" >&2
	exit 1
fi
# Exact round robin: every request repeats the one three before it.
prev3="$1 $2 $3"
shift 3
while [ $# -ge 3 ]; do
	if [ "$1 $2 $3" != "$prev3" ]; then
		echo "not an exact rotation: $names" >&2
		exit 1
	fi
	shift 3
done
echo "three-tier: app rotates over 3 containers:$(printf ' %s' $prev3)"

# Twelve calls down the chain: three hops each, and on every tier an exact
# rotation over its replicas (web 2, app 3, db 2).
chain=""
for i in 1 2 3 4 5 6 7 8 9 10 11 12; do
	path=$(curl -s -m 5 127.0.0.1:8080/chain)
	echo "chain $i: $path"
	chain="$chain$path
"
done
for tier in 1:2 2:3 3:2; do
	field=${tier%:*} n=${tier#*:}
	if ! printf '%s' "$chain" | awk -F ' -> ' -v f="$field" -v n="$n" '
		NF != 3 { print "not three hops: " $0; bad = 1; next }
		{ got[NR] = $f; seen[$f] = 1 }
		NR > n && got[NR] != got[NR - n] { print "tier " f ": not an exact rotation over " n " at call " NR; bad = 1 }
		END { k = 0; for (x in seen) k++; if (k != n) { print "tier " f ": " k " replicas answered, want " n; bad = 1 }; exit bad }
	' >&2; then
		exit 1
	fi
done
echo "three-tier: web -> app -> db rotates over 2, 3 and 2 replicas through tierlb"
