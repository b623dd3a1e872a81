#!/bin/sh
# tierlb's main job in one command: build the images (no registry needed),
# start the web, app and db tiers on their own networks with one tierlb
# bridging them, wait until every replica is up, and show the app tier's
# round robin by container name.
#
#   examples/three-tier/demo.sh          # up (three app replicas), then leave it running
#   examples/three-tier/demo.sh down     # remove the stack and the two images
#
# Needs Go, a Docker engine and docker-compose v1.29 (or Compose v2).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$here"
if command -v docker-compose >/dev/null 2>&1; then
	compose="docker-compose"
else
	compose="docker compose"
fi
DOCKER_GID=$(stat -c %g /var/run/docker.sock)
export DOCKER_GID

if [ "${1:-up}" = down ]; then
	$compose down -v --remove-orphans
	docker image rm tierlb:dev tierlb-whoami:dev >/dev/null 2>&1 || true
	exit 0
fi

"$root/scripts/build-image.sh" --tag tierlb:dev --whoami-tag tierlb-whoami:dev
$compose up -d --scale app=3

# Ready once tierlb has listed the engine and web, db and the three app
# replicas passed their first checks (app: its Docker HEALTHCHECK).
i=0
until [ "$(curl -s -m 1 127.0.0.1:9090/api/v1/services | grep -o '"state": *"up"' | wc -l)" -ge 5 ]; do
	i=$((i + 1))
	if [ $i -gt 300 ]; then
		echo "tierlb did not bring web, db and three app replicas up within 60s; what it sees:" >&2
		curl -s -m 1 127.0.0.1:9090/api/v1/explain >&2 || true
		exit 1
	fi
	sleep 0.2
done

echo
echo "app tier through tierlb (127.0.0.1:8081), one new connection per request:"
for i in 1 2 3 4 5 6; do
	printf '  request %d -> %s\n' "$i" "$(curl -s -m 2 127.0.0.1:8081/name)"
done
echo
$compose exec -T tierlb /tierlb status --admin http://127.0.0.1:9090
cat <<MSG

Running. Try:
  curl -s 127.0.0.1:8080/name                        # the web tier
  (cd $here && DOCKER_GID=$DOCKER_GID $compose up -d --scale app=5)   # new replicas join within a second
  (cd $here && DOCKER_GID=$DOCKER_GID $compose exec -T tierlb /tierlb explain --admin http://127.0.0.1:9090)
  open http://127.0.0.1:9090/                        # the status page
Remove it all: $0 down
MSG
