package main

import (
	"fmt"
	"slices"
	"strings"
)

// Each proxy runs at several settings (threads, workers, event loops), and
// which one does best depends on the row and on what shares the cores. So a
// row compares tierlb with each peer at that peer's best setting for that
// row, and names the setting.

// peerFamilies are the proxies tierlb is held against, in table order.
func peerFamilies() []string { return []string{"haproxy", "nginx"} }

// pick is one column's reading of one row.
type pick struct {
	t targetInfo
	s spread
}

func (p pick) ok() bool { return p.s.N > 0 }

// bestOf is the column of family with the best median on row r (lowest
// where lower is better, highest otherwise); not ok when none has one.
// On a tie the first column in table order wins.
func bestOf(res *results, r rowDef, family string) pick {
	var best pick
	for _, t := range res.columns() {
		if t.family() != family {
			continue
		}
		s := stat(res.Runs, r.Scenario, t.Name, r.Metric)
		if s.N == 0 {
			continue
		}
		if !best.ok() || (r.Higher && s.Median > best.s.Median) || (!r.Higher && s.Median < best.s.Median) {
			best = pick{t, s}
		}
	}
	return best
}

// bestPeer is the best of the peers' best settings on row r.
func bestPeer(res *results, r rowDef) pick {
	var best pick
	for _, f := range peerFamilies() {
		p := bestOf(res, r, f)
		if p.ok() && (!best.ok() || advantage(p.s.Median, best.s.Median, r.Higher) > 1) {
			best = p
		}
	}
	return best
}

// defaultOf is family's column run with no setting (tierlb as users run
// it); results from before settings were compared have one column per
// family, named for it.
func defaultOf(res *results, r rowDef, family string) pick {
	for _, t := range res.columns() {
		if t.family() == family && (t.Default || t.Name == family) {
			return pick{t, stat(res.Runs, r.Scenario, t.Name, r.Metric)}
		}
	}
	return pick{}
}

// ratio is a ÷ b on one row: Median is the ratio of the two medians (what
// the table cells show); Min and Max are the lowest and highest ratio
// within a round, pairing each round's run of a with the same round's run
// of b (they ran a few minutes apart at most, under the same load on the
// machine). N counts those rounds.
func ratio(res *results, r rowDef, a, b pick) spread {
	if !a.ok() || !b.ok() || b.s.Median == 0 {
		return spread{}
	}
	byRound := func(target string) map[int]float64 {
		m := make(map[int]float64)
		for _, run := range res.Runs {
			if run.Scenario == r.Scenario && run.Target == target && run.Err == "" {
				if v, ok := run.Metrics[r.Metric]; ok {
					m[run.Round] = v
				}
			}
		}
		return m
	}
	av, bv := byRound(a.t.Name), byRound(b.t.Name)
	var per []float64
	for round, x := range av {
		if y, ok := bv[round]; ok && y != 0 {
			per = append(per, x/y)
		}
	}
	s := summarize(per)
	s.Median = a.s.Median / b.s.Median
	if s.N == 0 {
		s.Min, s.Max, s.N = s.Median, s.Median, 1
	}
	return s
}

func fmtRatio(s spread) string {
	if s.N == 0 {
		return "–"
	}
	f := func(v float64) string { return fmt.Sprintf("%.2f×", v) }
	if s.N == 1 || f(s.Min) == f(s.Max) {
		return f(s.Median)
	}
	return fmt.Sprintf("%s (%.2f–%.2f)", f(s.Median), s.Min, s.Max)
}

// pickCell is "setting: median (min–max)".
func pickCell(p pick, r rowDef) string {
	if !p.ok() {
		return "–"
	}
	return p.t.setting() + ": " + cell(p.s, r.Format)
}

// peerRows are the rows a peer was measured on (not the reference rows).
func peerRows(res *results) []rowDef {
	var out []rowDef
	for _, r := range res.rows() {
		if !r.Reference && bestPeer(res, r).ok() {
			out = append(out, r)
		}
	}
	return out
}

// subjectFamilies are the tierlb builds in the results: the work tree's
// and, with --baseline, the baseline's.
func subjectFamilies(res *results) []string {
	var out []string
	for _, f := range []string{"tierlb", "tierlb-base"} {
		if slices.ContainsFunc(res.columns(), func(t targetInfo) bool { return t.family() == f }) {
			out = append(out, f)
		}
	}
	return out
}

// familyLabel is how the family's columns are headed ("tierlb@1a2b3c4").
func familyLabel(res *results, family string) string {
	for _, t := range res.columns() {
		if t.family() == family {
			return t.proxyLabel()
		}
	}
	return family
}

// writeBestPeer is the headline table: per row, tierlb at its best setting
// and at its default against each peer's best setting, and the ratios.
func writeBestPeer(b *strings.Builder, res *results) {
	rows := peerRows(res)
	if len(rows) == 0 {
		return
	}
	for _, subj := range subjectFamilies(res) {
		name := familyLabel(res, subj)
		fmt.Fprintf(b, "\n## %s against the best peer setting, row by row\n\n", name)
		fmt.Fprintf(b, "Each cell names the setting and gives its median (min–max over the rounds). \"Best\" is, per row, "+
			"the setting with the lowest median where lower is better (CPU, latency, memory) and the highest otherwise "+
			"(req/s, MB/s, connections held); the best peer is the better of the best HAProxy and the best nginx. "+
			"A ratio is %s ÷ peer: the ratio of the medians, then in brackets the lowest and highest ratio within "+
			"one round (the two ran minutes apart at most). Below 1.00× is better where lower is better.\n\n", name)
		fmt.Fprintf(b, "| row | better | %[1]s, best setting | %[1]s default | HAProxy, best setting | nginx, best setting | best %[1]s ÷ best peer | default %[1]s ÷ best peer | best %[1]s ÷ best HAProxy |\n", name)
		b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
		for _, r := range rows {
			best, def := bestOf(res, r, subj), defaultOf(res, r, subj)
			hap, ngx, peer := bestOf(res, r, "haproxy"), bestOf(res, r, "nginx"), bestPeer(res, r)
			peerCell := func(p pick) string {
				c := pickCell(p, r)
				if p.ok() && p.t.Name == peer.t.Name {
					c = "**" + c + "**"
				}
				return c
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Label, direction(r.Higher),
				pickCell(best, r), pickCell(def, r), peerCell(hap), peerCell(ngx),
				fmtRatio(ratio(res, r, best, peer)), fmtRatio(ratio(res, r, def, peer)), fmtRatio(ratio(res, r, best, hap)))
		}
		b.WriteString("\nThe best peer of each row is in bold.\n")
	}
	writeBeforeAfter(b, res, rows)
}

// writeBeforeAfter compares the work tree's tierlb with the baseline's,
// both at their best setting and at their default.
func writeBeforeAfter(b *strings.Builder, res *results, rows []rowDef) {
	if len(subjectFamilies(res)) < 2 {
		return
	}
	before, after := familyLabel(res, "tierlb-base"), familyLabel(res, "tierlb")
	fmt.Fprintf(b, "\n## Before and after: %s (after) against %s (before), same rounds\n\n", after, before)
	fmt.Fprintf(b, "| row | better | before, best setting | after, best setting | after ÷ before, best | before default | after default | after ÷ before, default |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		bb, ab := bestOf(res, r, "tierlb-base"), bestOf(res, r, "tierlb")
		bd, ad := defaultOf(res, r, "tierlb-base"), defaultOf(res, r, "tierlb")
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Label, direction(r.Higher),
			pickCell(bb, r), pickCell(ab, r), fmtRatio(ratio(res, r, ab, bb)),
			pickCell(bd, r), pickCell(ad, r), fmtRatio(ratio(res, r, ad, bd)))
	}
}

func direction(higher bool) string {
	if higher {
		return "higher"
	}
	return "lower"
}
