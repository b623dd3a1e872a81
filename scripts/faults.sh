#!/bin/sh
# tierlb's fault suite: break things around a running tierlb and print one
# table of what it cost. The scenarios are Go tests (./faults drives the
# binary on the host; ./backends/docker runs tierlb in a container in front
# of whoami replicas); this script runs them and gathers their lines.
#
#   scripts/faults.sh          # everything: about 10 minutes; needs Docker,
#                              # docker-compose, and root for the netns scenario
#   scripts/faults.sh --fast   # the part CI runs (about two minutes; Docker for
#                              # the local ports scenario)
#
# Exit status 0 when every scenario kept its promise. The full log is left
# in $TMPDIR/tierlb-faults.log.
set -u

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
log=${TMPDIR:-/tmp}/tierlb-faults.log
: >"$log"
status=0
if [ "${1:-}" = --fast ]; then
	go test -count=1 -v -timeout 10m ./faults/ >>"$log" 2>&1 || status=1
else
	TIERLB_FAULTS=full go test -count=1 -v -timeout 30m ./faults/ >>"$log" 2>&1 || status=1
	TIERLB_ROLLING_COMPARE=1 go test -count=1 -v -timeout 30m \
		-run 'TestRollingRestartsLoseNothing|TestE2EStreamCutUnderLoad' ./backends/docker/ >>"$log" 2>&1 || status=1
fi

echo "tierlb fault suite, $(date -u +%Y-%m-%d), $(nproc) cores"
echo
printf '| %s | %s | %s |\n|---|---|---|\n' scenario result measured
grep -o 'fault: .*' "$log" | sed 's/^fault: //' | awk -F' [|] ' '{ printf "| %s | %s | %s |\n", $1, $2, $3 }'

if grep -q 'rolling: ' "$log"; then
	echo
	echo "Failed connections per restart kind, new connections through tierlb from 8 clients"
	echo "(whoami replicas without and with their 3 s lame-duck period):"
	echo
	grep -o 'rolling: .*' "$log" | awk '
	{
		match($0, /lame_duck=[^ ]+/); ld = substr($0, RSTART + 10, RLENGTH - 10)
		match($0, /kind="[^"]+"/); kind = substr($0, RSTART + 6, RLENGTH - 7)
		match($0, /requests=[0-9]+/); req = substr($0, RSTART + 9, RLENGTH - 9)
		match($0, /failed=[0-9]+/); failed = substr($0, RSTART + 7, RLENGTH - 7)
		if (!(kind in seen)) { seen[kind] = 1; order[++n] = kind }
		cell[kind, ld == "0s" ? "off" : "on"] = failed " of " req
	}
	END {
		print "| restart kind | lame duck off | lame duck 3s |"
		print "|---|---|---|"
		for (i = 1; i <= n; i++) {
			k = order[i]
			off = ((k, "off") in cell) ? cell[k, "off"] : "-"
			on = ((k, "on") in cell) ? cell[k, "on"] : "-"
			printf "| %s | %s | %s |\n", k, off, on
		}
	}'
fi

if [ $status -ne 0 ]; then
	echo
	echo "Some scenarios failed:"
	grep -E '^\s*--- FAIL|_test.go:[0-9]+: ' "$log" | grep -v 'fault: \|rolling: ' | head -30
	echo "full log: $log"
fi
exit $status
