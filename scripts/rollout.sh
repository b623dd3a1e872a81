#!/bin/sh
# Replace every replica of a Compose service with no failed connection:
# start the new replicas beside the old ones, wait until they are healthy
# (and, with --admin, until tierlb routes to them), then stop the old ones,
# which tierlb drains at their stop signal, and remove them.
#
#   scripts/rollout.sh [-f docker-compose.yml] [-p project] [--admin http://127.0.0.1:9090] SERVICE
#
# Plain `docker-compose up -d` recreates every changed replica of a service
# at once (stop, then create): for a moment no replica exists and every new
# connection fails, whatever the balancer. Compose v1.29 and v2 both.
# Needs docker and docker-compose (or `docker compose`); waits at most
# $ROLLOUT_TIMEOUT seconds (120) for the new replicas.
set -eu

files=""
admin=""
service=""
while [ $# -gt 0 ]; do
	case "$1" in
	-f) files="$files -f $2"; shift 2 ;;
	-p) files="$files -p $2"; shift 2 ;;
	--admin) admin=$2; shift 2 ;;
	-*) echo "usage: $0 [-f FILE] [-p PROJECT] [--admin URL] SERVICE" >&2; exit 1 ;;
	*) service=$1; shift ;;
	esac
done
[ -n "$service" ] || { echo "usage: $0 [-f FILE] [-p PROJECT] [--admin URL] SERVICE" >&2; exit 1; }
if command -v docker-compose >/dev/null 2>&1; then
	compose="docker-compose $files"
else
	compose="docker compose $files"
fi
timeout=${ROLLOUT_TIMEOUT:-120}

full_ids() { for id in "$@"; do docker inspect -f '{{.Id}}' "$id"; done; }
old=$(full_ids $($compose ps -q "$service"))
n=$(echo "$old" | grep -c . || true)
if [ "$n" -eq 0 ]; then
	echo "rollout: no running replica of $service; use docker-compose up -d" >&2
	exit 1
fi

# --no-recreate keeps the old replicas as they are; the new ones get the
# current image and configuration.
$compose up -d --no-deps --no-recreate --scale "$service=$((2 * n))" "$service" >/dev/null 2>&1
new=$(full_ids $($compose ps -q "$service") | grep -v -F "$old" || true)

# ready: running and, with a HEALTHCHECK, healthy; with --admin, also up in
# tierlb (its services JSON lists each backend's container ID, then state).
ready() {
	st=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$1")
	[ "$st" = healthy ] || [ "$st" = running ] || return 1
	[ -z "$admin" ] && return 0
	curl -s -m 2 "$admin/api/v1/services" | grep -A1 "\"container\": \"$1\"" | grep -q '"state": "up"'
}
start=$(date +%s)
for id in $new; do
	until ready "$id"; do
		if [ $(($(date +%s) - start)) -ge "$timeout" ]; then
			echo "rollout: new replica $id not ready within ${timeout}s; the old replicas still serve" >&2
			exit 1
		fi
		sleep 0.2
	done
done

# The old replicas leave rotation at their stop signal and serve what they
# already have during their own grace period.
docker stop $old >/dev/null
docker rm $old >/dev/null
echo "rollout: $service: replaced $n replicas"
