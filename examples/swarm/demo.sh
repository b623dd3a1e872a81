#!/bin/sh
# tierlb in Swarm mode in one command, on a 3-node Swarm made of containers
# on this machine (scripts/swarm-cluster.sh: the host engine itself stays out
# of Swarm mode): build the images (no registry needed), load them into the
# nodes, deploy docker-stack.yml as stack "shop" from the manager, wait until
# tierlb routes every task, and show the app tier's round robin over tasks on
# all three nodes.
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

# Ready once tierlb routes web (2), app (3) and db (1): six backends up.
i=0
until [ "$(curl -s -m 1 "$lb:9090/api/v1/services" | grep -o '"state": *"up"' | wc -l)" -ge 6 ]; do
	i=$((i + 1))
	if [ $i -gt 600 ]; then
		echo "tierlb did not bring six tasks up within 120s; what it sees:" >&2
		curl -s -m 1 "$lb:9090/api/v1/explain" >&2 || true
		exit 1
	fi
	sleep 0.2
done

echo
$manager node ls
echo
echo "app tier through tierlb ($lb:8081), one new connection per request:"
for i in 1 2 3 4 5 6; do
	printf '  request %d -> %s\n' "$i" "$(curl -s -m 2 "$lb:8081/name")"
done
echo
docker run --rm --network host tierlb:dev status --admin "http://$lb:9090"
cat <<MSG

Running: tierlb on node1 ($lb), tasks on node1..node3. Try:
  curl -s $lb:8080/name                                           # the web tier
  $manager service scale shop_app=6            # new tasks join once healthy
  $manager service update --force shop_app     # rolling update: each task drains first
  $manager node update --availability drain node3
  docker run --rm --network host tierlb:dev explain --admin http://$lb:9090
Remove it all: $0 down
MSG
