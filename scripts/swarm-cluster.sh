#!/bin/sh
# A multi-node Docker Swarm on one machine, for tierlb's Swarm tests and demo.
# Each node is a container running the host's own dockerd (nothing is
# downloaded): an image imported from an empty rootfs, with /usr and
# /etc/alternatives bind-mounted read-only, its own /run and /var/lib/docker
# on tmpfs (storage driver vfs), on a bridge network with an explicit subnet.
# The first node inits the Swarm, the others join; images are copied in with
# docker save | docker load. The host engine itself never enters Swarm mode.
#
#   scripts/swarm-cluster.sh up NAME [NODES] [IMAGE...]   # start NODES (3) nodes, load IMAGEs
#   scripts/swarm-cluster.sh env NAME                      # shell lines: node sockets and addresses
#   scripts/swarm-cluster.sh down NAME                     # remove everything NAME created
#
# Every object carries the labels tierlb.test=1 and tierlb.swarm-cluster=NAME;
# "down" finds them by label, so it also cleans up after a failed "up".
# Node N's engine answers on the unix socket $TMPDIR/tierlb-swarm-NAME/nodeN.sock
# (e.g. docker -H unix://.../node1.sock service ls); node1 is the manager.
# Needs root (or a user allowed to run such containers) and a kernel with vxlan.
set -eu

usage() {
	echo "usage: $0 up NAME [NODES] [IMAGE...] | env NAME | down NAME" >&2
	exit 2
}
[ $# -ge 2 ] || usage
cmd=$1
name=$2
shift 2
case "$name" in
*[!a-z0-9-]* | "") echo "$0: NAME must be lower-case letters, digits and '-'" >&2; exit 2 ;;
esac

prefix=tierlb-swarm-$name
dir=${TMPDIR:-/tmp}/$prefix
labels="--label tierlb.test=1 --label tierlb.swarm-cluster=$name"
filter="label=tierlb.swarm-cluster=$name"

down() {
	ids=$(docker ps -aq --filter "$filter")
	[ -z "$ids" ] || docker rm -f -v $ids >/dev/null
	nets=$(docker network ls -q --filter "$filter")
	[ -z "$nets" ] || docker network rm $nets >/dev/null
	imgs=$(docker image ls -q --filter "$filter")
	[ -z "$imgs" ] || docker image rm -f $imgs >/dev/null
	rm -rf "$dir"
}

nodesock() { echo "unix://$dir/node$1.sock"; }
nodeip() { docker inspect -f "{{(index .NetworkSettings.Networks \"$prefix\").IPAddress}}" "$prefix-node$1"; }

# freesubnet prints a /24 in 10.213.0.0/16 that no Docker network on the
# host uses; a lock directory keeps two concurrent "up"s apart.
freesubnet() {
	used=$(docker network inspect $(docker network ls -q) -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}' 2>/dev/null | tr '\n' ' ')
	i=1
	while [ $i -lt 250 ]; do
		s=10.213.$i.0/24
		case " $used " in
		*" $s "*) ;;
		*) echo "$s"; return 0 ;;
		esac
		i=$((i + 1))
	done
	echo "$0: no free subnet in 10.213.0.0/16" >&2
	return 1
}

up() {
	nodes=${1:-3}
	[ $# -gt 0 ] && shift
	trap 'status=$?; if [ $status -ne 0 ]; then echo "$0: up failed; removing $name" >&2; down; fi' EXIT
	mkdir -p "$dir"

	# The node image: an empty rootfs with the merged-/usr symlinks; the
	# host's /usr supplies dockerd, containerd, runc and iptables.
	root=$(mktemp -d)
	mkdir -p "$root/etc" "$root/tmp" "$root/var/lib" "$root/usr" "$root/run" "$root/root"
	ln -s usr/bin "$root/bin"
	ln -s usr/sbin "$root/sbin"
	ln -s usr/lib "$root/lib"
	[ -e /lib64 ] && ln -s usr/lib64 "$root/lib64"
	ln -s /run "$root/var/run"
	echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
	echo 'root:x:0:' >"$root/etc/group"
	tar -C "$root" -c . | docker import -c "LABEL tierlb.test=1 tierlb.swarm-cluster=$name" - "$prefix-node:latest" >/dev/null
	rm -rf "$root"

	subnet=$(freesubnet)
	docker network create $labels --subnet "$subnet" "$prefix" >/dev/null

	i=1
	while [ $i -le "$nodes" ]; do
		docker run -d $labels --name "$prefix-node$i" --hostname "node$i" --network "$prefix" \
			-v /usr:/usr:ro -v /etc/alternatives:/etc/alternatives:ro \
			-v /sys/fs/cgroup:/sys/fs/cgroup -v "$dir:/sockdir" \
			--cap-add ALL --cap-drop SYS_RESOURCE \
			--security-opt seccomp=unconfined --security-opt apparmor=unconfined \
			--device-cgroup-rule 'a *:* rwm' \
			--tmpfs /run:exec --tmpfs /var/lib/docker:exec --tmpfs /tmp:exec \
			"$prefix-node:latest" \
			/usr/sbin/dockerd --storage-driver vfs -H unix:///run/docker.sock -H "unix:///sockdir/node$i.sock" \
			>/dev/null
		i=$((i + 1))
	done
	i=1
	while [ $i -le "$nodes" ]; do
		n=0
		until docker -H "$(nodesock $i)" version >/dev/null 2>&1; do
			n=$((n + 1))
			if [ $n -gt 300 ]; then
				echo "$0: node$i's dockerd did not answer within 60s; its log:" >&2
				docker logs --tail 30 "$prefix-node$i" >&2
				exit 1
			fi
			sleep 0.2
		done
		i=$((i + 1))
	done

	# A 1s dispatcher heartbeat makes a stopped node "down" within seconds.
	docker -H "$(nodesock 1)" swarm init --advertise-addr "$(nodeip 1)" \
		--default-addr-pool 10.214.0.0/16 --dispatcher-heartbeat 1s >/dev/null
	token=$(docker -H "$(nodesock 1)" swarm join-token -q worker)
	i=2
	while [ $i -le "$nodes" ]; do
		docker -H "$(nodesock $i)" swarm join --advertise-addr "$(nodeip $i)" --token "$token" "$(nodeip 1):2377" >/dev/null
		i=$((i + 1))
	done

	# Every node Ready before anything is scheduled, so that tasks spread.
	n=0
	until [ "$(docker -H "$(nodesock 1)" node ls --format '{{.Status}}' | grep -c '^Ready$')" -eq "$nodes" ]; do
		n=$((n + 1))
		if [ $n -gt 300 ]; then
			echo "$0: not every node is Ready within 60s:" >&2
			docker -H "$(nodesock 1)" node ls >&2
			exit 1
		fi
		sleep 0.2
	done

	if [ $# -gt 0 ]; then
		i=1
		while [ $i -le "$nodes" ]; do
			docker save "$@" | docker -H "$(nodesock $i)" load -q >/dev/null
			i=$((i + 1))
		done
	fi
	trap - EXIT
	env
}

env() {
	n=0
	for c in $(docker ps -q --filter "$filter" | sort); do
		n=$((n + 1))
	done
	echo "TIERLB_SWARM_NAME=$name"
	echo "TIERLB_SWARM_NODES=$n"
	echo "TIERLB_SWARM_DIR=$dir"
	i=1
	while [ $i -le $n ]; do
		echo "TIERLB_SWARM_NODE${i}_HOST=$(nodesock $i)"
		echo "TIERLB_SWARM_NODE${i}_IP=$(nodeip $i)"
		i=$((i + 1))
	done
}

case "$cmd" in
up) up "$@" ;;
env) env ;;
down) down ;;
*) usage ;;
esac
