package main

import (
	"fmt"
	"strings"
)

// The small-request floor section of results.md: each column's CPU per
// request divided by the epoll relay's, the floor of the event-loop model
// every proxy here shares, and by the io_uring relay's, how far below it
// the kernel lets a proxy go (small.go says what the two relays are).

// Families of the two small-request relays.
const (
	epollFloorFamily = "epoll-relay"
	uringFloorFamily = "uring-relay"
)

// smallGoal is issue 18's goal for small keep-alive requests: at most this
// much of the best HAProxy setting's CPU per request.
const smallGoal = 0.85

// smallFloorRows are the rows the floor is given for: small requests on
// keep-alive connections, on a new connection each, and spread over ports.
var smallFloorRows = []floorRow{
	{"keepalive", "cpu_per_100k"}, {"close", "cpu_per_100k"},
	{"services1", "cpu_per_100k"}, {"services20", "cpu_per_100k"}, {"services200", "cpu_per_100k"},
}

// quotient is v[0] ÷ v[1], undefined when v[1] is not positive.
func quotient(v []float64) (float64, bool) {
	if v[1] <= 0 {
		return 0, false
	}
	return v[0] / v[1], true
}

// scaledQuotient is k × v[0] ÷ v[1]: where a goal set as a share of one
// column lies against another.
func scaledQuotient(k float64) func([]float64) (float64, bool) {
	return func(v []float64) (float64, bool) {
		q, ok := quotient(v)
		return k * q, ok
	}
}

// perRoundRatio is a ÷ b on row r, round by round; "–" when either was
// not measured.
func perRoundRatio(res *results, r rowDef, a, b pick) string {
	if !a.ok() || !b.ok() {
		return "–"
	}
	return fmtRatio(perRound(res, r.Scenario, r.Metric, []string{a.t.Name, b.t.Name}, quotient))
}

// writeSmallFloor is the small-request floor section: per row, the two
// relays, tierlb at its best setting and default and each peer's best
// setting; each ÷ the epoll relay, round by round; then the same ÷ the
// io_uring relay.
func writeSmallFloor(b *strings.Builder, res *results) {
	rows := rowsWithFloor(res, smallFloorRows, epollFloorFamily)
	if len(rows) == 0 {
		return
	}
	b.WriteString("\n## The floor for small requests\n\n" +
		"The floor is the epoll relay column (`bench/relay/small.c epoll`): one thread, edge-triggered epoll, a recv and a " +
		"send per message on each hop into a 16 KiB buffer per direction, no runtime, no timers, no bookkeeping: the " +
		"event-loop model every proxy here shares, with nothing added. The io_uring relay (`small.c uring`) does the same " +
		"work with a receive queued on every socket and a send queued on its completion, all submitted in the one " +
		"io_uring_enter that waits for the next completions: the same socket work without a system call per receive and " +
		"per send. Their CPU is read as every proxy's is (utime+stime of the process). A ratio is column ÷ relay, taken " +
		"within each round (the two ran minutes apart at most): the median of those, then in brackets the lowest and " +
		"highest. \"Goal\" is issue 18's " + fmt.Sprintf("%.2f", smallGoal) + "× the best HAProxy setting, ÷ the relay: under 1.00× " +
		"it lies below what that relay spends.\n\n")
	b.WriteString("| row | floor: epoll relay | io_uring relay | tierlb, best setting | tierlb default | HAProxy, best setting | nginx, best setting | io_uring ÷ floor | best tierlb ÷ floor | default tierlb ÷ floor | best HAProxy ÷ floor | best nginx ÷ floor | goal ÷ floor |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	type cols struct{ floor, uring, best, def, hap, ngx pick }
	picked := make([]cols, len(rows))
	goal := func(r rowDef, hap, relay pick) string {
		if !hap.ok() || !relay.ok() {
			return "–"
		}
		return fmtRatio(perRound(res, r.Scenario, r.Metric, []string{hap.t.Name, relay.t.Name}, scaledQuotient(smallGoal)))
	}
	for i, r := range rows {
		c := cols{bestOf(res, r, epollFloorFamily), bestOf(res, r, uringFloorFamily), bestOf(res, r, "tierlb"),
			defaultOf(res, r, "tierlb"), bestOf(res, r, "haproxy"), bestOf(res, r, "nginx")}
		picked[i] = c
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Label,
			cell(c.floor.s, r.Format), cell(c.uring.s, r.Format),
			pickCell(c.best, r), pickCell(c.def, r), pickCell(c.hap, r), pickCell(c.ngx, r),
			perRoundRatio(res, r, c.uring, c.floor), perRoundRatio(res, r, c.best, c.floor), perRoundRatio(res, r, c.def, c.floor),
			perRoundRatio(res, r, c.hap, c.floor), perRoundRatio(res, r, c.ngx, c.floor), goal(r, c.hap, c.floor))
	}

	var lines []string
	for i, r := range rows {
		c := picked[i]
		if !c.uring.ok() {
			continue
		}
		lines = append(lines, fmt.Sprintf("| %s | %s | %s | %s | %s | %s | %s |", r.Label, cell(c.uring.s, r.Format),
			perRoundRatio(res, r, c.best, c.uring), perRoundRatio(res, r, c.def, c.uring),
			perRoundRatio(res, r, c.hap, c.uring), perRoundRatio(res, r, c.ngx, c.uring), goal(r, c.hap, c.uring)))
	}
	if len(lines) == 0 {
		return
	}
	b.WriteString("\nThe same columns ÷ the io_uring relay: how far each is from what one thread spends on the same sockets " +
		"when the system calls are batched.\n\n")
	b.WriteString("| row | io_uring relay | best tierlb ÷ io_uring | default tierlb ÷ io_uring | best HAProxy ÷ io_uring | best nginx ÷ io_uring | goal ÷ io_uring |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	b.WriteString(strings.Join(lines, "\n") + "\n")
}
