#!/bin/sh
# Bring up examples/three-tier with three app replicas, check that the
# published app port rotates over all three containers, then tear everything
# down (containers, networks, volumes and the two images this script built).
# Needs docker and docker-compose (v1.29) or `docker compose` (v2); no registry.
#
#   scripts/three-tier-check.sh            # exit 0 when the rotation is exact
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
