#!/bin/sh
# Bring up examples/three-tier with three app replicas, check that the
# published app port rotates over all three containers, then tear everything
# down (containers, networks, volumes and the two images this script built).
# Needs docker and docker-compose (v1.29) or `docker compose` (v2); no registry.
#
#   scripts/three-tier-check.sh            # exit 0 when the rotation is exact
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/examples/three-tier"
if command -v docker-compose >/dev/null 2>&1; then
	compose="docker-compose"
else
	compose="docker compose"
fi
DOCKER_GID=$(stat -c %g /var/run/docker.sock)
export DOCKER_GID

cleanup() {
	$compose down -v --remove-orphans >/dev/null 2>&1 || true
	docker image rm tierlb:dev tierlb-whoami:dev >/dev/null 2>&1 || true
}
trap cleanup EXIT

"$root/scripts/build-image.sh" --tag tierlb:dev --whoami-tag tierlb-whoami:dev
$compose up -d --scale app=3

# Ready once tierlb has listed the engine; the app replicas join once their
# HEALTHCHECK says healthy (health type docker).
i=0
until [ "$(curl -s -m 1 127.0.0.1:9090/api/v1/services | grep -o '"state": *"up"' | wc -l)" -ge 5 ]; do
	i=$((i + 1))
	if [ $i -gt 300 ]; then
		echo "tierlb did not bring web, db and three app replicas up within 60s" >&2
		curl -s -m 1 127.0.0.1:9090/api/v1/explain >&2 || true
		exit 1
	fi
	sleep 0.2
done

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
