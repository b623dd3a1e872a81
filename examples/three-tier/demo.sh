#!/bin/sh
# tierlb's main job in one command: build the images (no registry needed),
# start the web, app and db tiers on their own networks with one tierlb
# bridging them, wait until every replica of every service is up, and show
# the tiers calling each other through tierlb by the names they already use
# (web -> app:8081 -> db:5432), rotating on every tier.
#
#   examples/three-tier/demo.sh          # up (2 web, 3 app, 2 db replicas), then leave it running
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

# Ready once tierlb routes every container of the project but itself (each
# is a backend of one service here), all of them up: the rotation is only
# exact once the last replica has passed its first check.
want=$(($($compose ps -q | wc -l) - 1))
i=0
while :; do
	services=$(curl -s -m 1 127.0.0.1:9090/api/v1/services || true)
	seen=$(printf '%s' "$services" | grep -o '"state": *"[a-z]*"' | wc -l)
	up=$(printf '%s' "$services" | grep -o '"state": *"up"' | wc -l)
	if [ "$seen" -ge "$want" ] && [ "$up" -eq "$seen" ]; then
		break
	fi
	i=$((i + 1))
	if [ $i -gt 300 ]; then
		echo "tierlb did not bring all $want backends up within 60s ($up of $seen up); what it sees:" >&2
		curl -s -m 1 127.0.0.1:9090/api/v1/explain >&2 || true
		exit 1
	fi
	sleep 0.2
done

echo
echo "web -> app -> db, each hop a new connection through tierlb (the replicas call app:8081 and db:5432):"
for i in 1 2 3 4 5 6; do
	printf '  call %d: %s\n' "$i" "$(curl -s -m 5 127.0.0.1:8080/chain)"
done
echo
$compose exec -T tierlb /tierlb status --admin http://127.0.0.1:9090
cat <<MSG

Running. Try:
  curl -s 127.0.0.1:8080/chain                       # web -> app -> db through tierlb
  curl -s 127.0.0.1:8081/name                        # the app tier alone
  (cd $here && DOCKER_GID=$DOCKER_GID $compose up -d --scale app=5)   # new replicas join within a second
  (cd $here && DOCKER_GID=$DOCKER_GID $compose exec -T tierlb /tierlb explain --admin http://127.0.0.1:9090)
  open http://127.0.0.1:9090/                        # the status page
Remove it all: $0 down
MSG
