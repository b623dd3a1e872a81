package main

import (
	"fmt"
	"strings"
)

// The floor section of results.md: how close each proxy's CPU per GB comes
// to the least possible proxy's, the splice relay column (relay.go says why
// that column is the floor), and the cross-check from the CPU of every
// process of the run against the direct column.

// floorFamily is the column the floor section divides by.
const floorFamily = "splice-relay"

// floorRow names a row a floor section covers.
type floorRow struct{ scenario, metric string }

// floorRows are the rows the floor is measured for: bulk transfer, through
// many connections and through one stream.
var floorRows = []floorRow{{"bulk", "cpu_per_gb"}, {"iperf", "cpu_per_gb"}}

// rowsWithFloor are the rows of res named in defs, in that order, where
// the floor column (family) has a value.
func rowsWithFloor(res *results, defs []floorRow, family string) []rowDef {
	var rows []rowDef
	for _, fr := range defs {
		for _, r := range res.rows() {
			if r.Scenario == fr.scenario && r.Metric == fr.metric && bestOf(res, r, family).ok() {
				rows = append(rows, r)
			}
		}
	}
	return rows
}

// perRound applies f, round by round, to the values of metric on scenario
// for targets (in that order), in the rounds where every target has one and
// f says the result is defined; it summarises the results. Runs of one
// round are minutes apart at most, so a per-round difference or ratio
// cancels most of what the shared machine did in between.
func perRound(res *results, scenario, metric string, targets []string, f func(v []float64) (float64, bool)) spread {
	byRound := map[int][]float64{}
	rounds := []int{}
	for i, t := range targets {
		for _, run := range res.Runs {
			if run.Scenario != scenario || run.Target != t || run.Err != "" {
				continue
			}
			v, ok := run.Metrics[metric]
			if !ok {
				continue
			}
			vs := byRound[run.Round]
			if len(vs) != i {
				continue // an earlier target lacks this round, or a duplicate
			}
			if i == 0 {
				rounds = append(rounds, run.Round)
			}
			byRound[run.Round] = append(vs, v)
		}
	}
	var out []float64
	for _, round := range rounds {
		if vs := byRound[round]; len(vs) == len(targets) {
			if x, ok := f(vs); ok {
				out = append(out, x)
			}
		}
	}
	return summarize(out)
}

// overDirect is x − direct: what a column's extra hop and proxy cost above
// one hop.
func overDirect(v []float64) (float64, bool) { return v[0] - v[1], true }

// excessRatio is (x − direct) ÷ (floor − direct): a column's cost above
// one hop over the least possible proxy's; undefined when the floor does
// not cost more than one hop (a run disturbed by the shared machine).
func excessRatio(v []float64) (float64, bool) {
	x, floor, direct := v[0], v[1], v[2]
	if floor <= direct {
		return 0, false
	}
	return (x - direct) / (floor - direct), true
}

// writeFloor is the floor section: per bulk row, the floor, tierlb at its
// best setting and default and each peer's best setting, each ÷ the floor;
// then the same columns' CPU of every process over direct's.
func writeFloor(b *strings.Builder, res *results) {
	rows := rowsWithFloor(res, floorRows, floorFamily)
	if len(rows) == 0 {
		return
	}
	b.WriteString("\n## The floor for bulk transfer\n\n" +
		"The floor is the splice relay column (`bench/relay`): a thread per direction looping blocking splice(2) " +
		"socket → pipe → socket with tierlb's 256 KiB pipe, no event loop, no runtime, no bookkeeping, the least a proxy " +
		"can do to receive one hop and send the next. Its CPU is read as every proxy's is (utime+stime of its process), " +
		"so it is charged for the same kernel work wherever the kernel puts it (on loopback the receiver's TCP softirq " +
		"work runs in the sender's context). A ratio is column ÷ floor: the ratio of the medians, then in brackets the " +
		"lowest and highest within one round.\n\n")
	b.WriteString("| row | floor: splice relay | tierlb, best setting | tierlb default | HAProxy, best setting | nginx, best setting | best tierlb ÷ floor | default tierlb ÷ floor | best HAProxy ÷ floor | best nginx ÷ floor |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	type cols struct{ floor, best, def, hap, ngx pick }
	picked := make(map[string]cols)
	for _, r := range rows {
		c := cols{bestOf(res, r, floorFamily), bestOf(res, r, "tierlb"), defaultOf(res, r, "tierlb"),
			bestOf(res, r, "haproxy"), bestOf(res, r, "nginx")}
		picked[r.Scenario] = c
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Label, cell(c.floor.s, r.Format),
			pickCell(c.best, r), pickCell(c.def, r), pickCell(c.hap, r), pickCell(c.ngx, r),
			fmtRatio(ratio(res, r, c.best, c.floor)), fmtRatio(ratio(res, r, c.def, c.floor)),
			fmtRatio(ratio(res, r, c.hap, c.floor)), fmtRatio(ratio(res, r, c.ngx, c.floor)))
	}

	var lines []string
	for _, r := range rows {
		c := picked[r.Scenario]
		direct := stat(res.Runs, r.Scenario, "direct", "all_cpu_per_gb")
		if direct.N == 0 || !c.floor.ok() {
			continue
		}
		line := fmt.Sprintf("| %s | %s |", r.Scenario, cell(direct, fmt2))
		for _, p := range []pick{c.floor, c.best, c.def, c.hap, c.ngx} {
			if !p.ok() {
				line += " – | – |"
				continue
			}
			over := perRound(res, r.Scenario, "all_cpu_per_gb", []string{p.t.Name, "direct"}, overDirect)
			x := perRound(res, r.Scenario, "all_cpu_per_gb", []string{p.t.Name, c.floor.t.Name, "direct"}, excessRatio)
			line += fmt.Sprintf(" %s: %s | %s |", p.t.setting(), cell(over, fmt2), fmtRatio(x))
		}
		lines = append(lines, line)
	}
	if len(lines) == 0 {
		return
	}
	b.WriteString("\nThe same columns, cross-checked from the CPU of every process of the run (load generator, backend, proxy; " +
		"`/proc`, the bench's reaped children included) per GB: direct's is one hop with both ends, a proxy's is two hops, " +
		"both ends and the proxy. \"Over direct\" is the column's figure minus direct's of the same round, the cost of the " +
		"second hop and the proxy together; \"÷ floor\" divides that by the relay's. Where it agrees with the table above, " +
		"the hops' costs land where that table says; work the kernel defers to ksoftirqd is in neither. Medians " +
		"(min–max) over the rounds.\n\n")
	b.WriteString("| scenario | direct: CPU s per GB, all processes | splice relay: over direct | ÷ floor | tierlb best: over direct | ÷ floor | tierlb default: over direct | ÷ floor | HAProxy best: over direct | ÷ floor | nginx best: over direct | ÷ floor |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	b.WriteString(strings.Join(lines, "\n") + "\n")
}
