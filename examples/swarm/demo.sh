#!/bin/sh
# tierlb in Swarm mode in one command, on a 3-node Swarm made of containers
# on this machine (scripts/swarm-cluster.sh: the host engine itself stays out
# of Swarm mode): build the images (no registry needed), load them into the
# nodes, deploy docker-stack.yml as stack "shop" from the manager, wait until
# tierlb routes every task, and show the tiers calling each other through
# tierlb by the names they already use (web -> app:8081 -> db:5432), rotating
# over tasks on all three nodes.
#
#   examples/swarm/demo.sh          # up, then leave it running
#   examples/swarm/demo.sh down     # remove the cluster and the two images
#
# Needs Go, a Docker engine, root (the nodes run dockerd) and a kernel with vxlan.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cluster="$root/scripts/swarm-cluster.sh"

if [ "${1:-up}" = down ]; then
	"$cluster" down demo
	docker image rm tierlb:dev tierlb-whoami:dev >/dev/null 2>&1 || true
	exit 0
fi

"$root/scripts/build-image.sh" --tag tierlb:dev --whoami-tag tierlb-whoami:dev
eval "$("$cluster" up demo 3 tierlb:dev tierlb-whoami:dev)"
manager="docker -H $TIERLB_SWARM_NODE1_HOST"
lb=$TIERLB_SWARM_NODE1_IP
(cd "$here" && $manager stack deploy -c docker-stack.yml shop 2>&1 | grep -v -e 'could not be accessed on a registry' -e 'its digest' -e 'independently' -e 'versions of the image' || true)

# Ready once tierlb routes every task the stack wants but its own, all of
# them up: the rotation is only exact once the last one passed its check.
want=$($manager stack services shop --format '{{.Name}} {{.Replicas}}' |
	awk '$1 != "shop_tierlb" { split($2, r, "/"); n += r[2] } END { print n + 0 }')
i=0
while :; do
	services=$(curl -s -m 1 "$lb:9090/api/v1/services" || true)
	seen=$(printf '%s' "$services" | grep -o '"state": *"[a-z]*"' | wc -l)
	up=$(printf '%s' "$services" | grep -o '"state": *"up"' | wc -l)
	if [ "$want" -gt 0 ] && [ "$seen" -ge "$want" ] && [ "$up" -eq "$seen" ]; then
		break
	fi
	i=$((i + 1))
	if [ $i -gt 600 ]; then
		echo "tierlb did not bring all $want tasks up within 120s ($up of $seen up); what it sees:" >&2
		curl -s -m 1 "$lb:9090/api/v1/explain" >&2 || true
		exit 1
	fi
	sleep 0.2
done

echo
$manager node ls
echo
echo "web -> app -> db, each hop a new connection through tierlb (the tasks call app:8081 and db:5432):"
for i in 1 2 3 4 5 6; do
	printf '  call %d: %s\n' "$i" "$(curl -s -m 5 "$lb:8080/chain")"
done
echo
docker run --rm --network host tierlb:dev status --admin "http://$lb:9090"
cat <<MSG

Running: tierlb on node1 ($lb), tasks on node1..node3. Try:
  curl -s $lb:8080/chain                                          # web -> app -> db through tierlb
  curl -s $lb:8081/name                                           # the app tier alone
  $manager service scale shop_app=6            # new tasks join once healthy
  $manager service update --force shop_app     # rolling update: each task drains first
  $manager node update --availability drain node3
  docker run --rm --network host tierlb:dev explain --admin http://$lb:9090
Remove it all: $0 down
MSG
