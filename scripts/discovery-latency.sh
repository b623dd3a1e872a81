#!/bin/sh
# Measure the Docker discovery figures through a real tierlb container on
# the local engine (no registry): ten times, the time from a replica's start
# event to its first proxied connection, and from its stop event to the last
# new connection tierlb sends it (negative: before the event), with the
# count of connections begun after the stop event, which must be 0.
#
#   scripts/discovery-latency.sh
set -eu
cd "$(dirname "$0")/.."
go test -count=1 -run 'TestE2EStartStopLatency$' -v ./backends/docker/ | grep -E 'median|^--- |^(ok|FAIL)'
