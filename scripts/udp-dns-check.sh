#!/bin/sh
# A label-declared UDP service checked with a real DNS client: two
# `whoami --dns` replicas on an internal "db" network, labelled
# tierlb.protocol=udp (as examples/three-tier's dns service), behind one
# tierlb container that publishes the port on 127.0.0.1. dig's TXT answers
# must name the two containers in turn (udp.responses: 1 makes each query a
# session of its own). Everything it creates has a random name, carries the
# label tierlb.test=1 and is removed at exit, images included.
#
#   scripts/udp-dns-check.sh            # exit 0 when the rotation is exact
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
id=udp$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
tag=tierlb:$id
wtag=tierlb-whoami:$id
cleanup() {
	docker rm -f "$id-tierlb" "$id-dns-1" "$id-dns-2" >/dev/null 2>&1 || true
	docker network rm "$id-front" "$id-db" >/dev/null 2>&1 || true
	docker image rm "$tag" "$wtag" >/dev/null 2>&1 || true
}
trap cleanup EXIT

"$root/scripts/build-image.sh" --tag "$tag" --whoami-tag "$wtag" --test >/dev/null

# Explicit subnets, retried until a free pair is found.
n=0
until
	a=$(( $(od -An -N1 -tu1 /dev/urandom) ))
	docker network create --label tierlb.test=1 --subnet "10.231.$a.0/24" "$id-front" >/dev/null 2>&1 &&
		docker network create --label tierlb.test=1 --internal --subnet "10.232.$a.0/24" "$id-db" >/dev/null 2>&1
do
	docker network rm "$id-front" >/dev/null 2>&1 || true
	n=$((n + 1))
	[ $n -lt 20 ] || { echo "no free subnet pair" >&2; exit 1; }
done

for i in 1 2; do
	docker run -d --name "$id-dns-$i" --label tierlb.test=1 --network "$id-db" \
		--label tierlb.service=dns --label tierlb.listen=0.0.0.0:53 --label tierlb.protocol=udp \
		--label tierlb.port=53 --label tierlb.udp.responses=1 \
		--label tierlb.health.type=send-expect \
		--label 'tierlb.health.send=\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x06health\x00\x00\x10\x00\x01' \
		--label 'tierlb.health.expect=health' \
		"$wtag" --listen :8080 --dns :53 >/dev/null
done
docker run -d --name "$id-tierlb" --label tierlb.test=1 --network "$id-front" -p 127.0.0.1::53/udp \
	--group-add "$(stat -c %g /var/run/docker.sock)" -v /var/run/docker.sock:/var/run/docker.sock:ro \
	-e TIERLB_DOCKER_ENABLED=true -e TIERLB_ADMIN_LISTEN=0.0.0.0:9090 \
	"$tag" run >/dev/null
docker network connect "$id-db" "$id-tierlb"
port=$(docker port "$id-tierlb" 53/udp | head -1 | sed 's/.*://')

i=0
until [ "$(dig @127.0.0.1 -p "$port" +tries=1 +time=1 +short TXT whoami 2>/dev/null | grep -c dns)" -ge 1 ]; do
	i=$((i + 1))
	if [ $i -gt 60 ]; then
		echo "no DNS answer through tierlb on 127.0.0.1:$port within a minute; tierlb says:" >&2
		docker logs "$id-tierlb" >&2 2>&1 | tail -20
		exit 1
	fi
	sleep 0.5
done
# Both replicas pass their checks before the rotation is counted.
until [ "$(docker exec "$id-tierlb" /tierlb status --admin http://127.0.0.1:9090 2>/dev/null | grep -c ' up ')" -ge 2 ]; do
	sleep 0.5
done

dig @127.0.0.1 -p "$port" TXT whoami | sed -n '/->>HEADER<</p;/ANSWER SECTION/,/^$/p'
names=""
for i in 1 2 3 4 5 6; do
	name=$(dig @127.0.0.1 -p "$port" +tries=1 +time=2 +short TXT whoami | tr -d '"')
	echo "query $i: $name"
	names="$names $name"
done
set -- $names
if [ "$1" = "$2" ] || [ "$(printf '%s\n' "$@" | sort -u | wc -l)" -ne 2 ]; then
	echo "want the two dns containers in turn, got:$names" >&2
	exit 1
fi
while [ $# -ge 3 ]; do
	if [ "$1" != "$3" ]; then
		echo "not an exact rotation:$names" >&2
		exit 1
	fi
	shift
done
docker exec "$id-tierlb" /tierlb status --admin http://127.0.0.1:9090
echo "udp: dig through tierlb rotates over 2 containers"
