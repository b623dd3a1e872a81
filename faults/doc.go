// Package faults is tierlb's fault suite: its tests run the tierlb binary as
// a user does, put it under load and break things around it, and log one
// line per scenario ("fault: SCENARIO | RESULT | DETAIL") that
// scripts/faults.sh gathers into a table.
//
//	go test -count=1 -v ./faults/                      # the fast part (CI)
//	TIERLB_FAULTS=full go test -count=1 -v ./faults/    # everything
//	scripts/faults.sh                                  # everything, Docker scenarios too, as a table
//
// The full part takes minutes: 100,000 connections of churn, a half-open
// client that only TCP keepalive can find (two minutes, and root for the
// network namespace), 3,000 silent clients per hoarding setting, and the
// local ports toward one backend (tierlb in a container, three minutes at
// up to 2,000 connections/s and 70 s at 700/s in a default namespace; the
// fast part runs 35 s of the first, with Docker;
// TIERLB_LOCALPORT_FIGURES=1 runs both alone).
package faults
