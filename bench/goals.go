package main

import (
	"fmt"
	"slices"
	"strings"
)

// The goals the issues set for tierlb, printed beside the rows they judge.
// Each is checked for tierlb at its best setting of the row and at its
// default; a goal whose figures are missing reads "not measured".

// goal is one target for one row: the figure of tierlb's column on
// (Scenario, Metric) ...
type goal struct {
	Scenario, Metric string
	Text             string
	// ... divided by the best setting of Family on the same row, at most Max;
	Family string
	// ... or divided by the same column's figure on Base's row, at most Max;
	Base string
	Max  float64
	// ... or at most the column's event loops plus LoopsPlus.
	LoopsPlus int
}

func goals() []goal {
	var out []goal
	out = append(out,
		goal{Scenario: "sni", Metric: "cpu_us_per_conn", Family: "haproxy", Max: 0.85, Text: "≤ 0.85× the best HAProxy setting"},
		goal{Scenario: "udp-queries", Metric: "cpu_per_100k", Family: "nginx", Max: 0.7, Text: "≤ 0.7× the best nginx setting"},
		goal{Scenario: "udp-stream", Metric: "cpu_per_100k", Family: "nginx", Max: 1, Text: "≤ the best nginx setting"},
	)
	for _, sc := range []string{"services20", "services200", "range200"} {
		out = append(out,
			goal{Scenario: sc, Metric: "cpu_per_100k", Base: "services1", Max: 1.05, Text: "within 5% of its own 1-service figure"},
			goal{Scenario: sc, Metric: "cpu_per_100k", Family: "haproxy", Max: 0.9, Text: "≤ 0.9× the best HAProxy setting"})
	}
	for _, sc := range []string{"services200", "range200"} {
		out = append(out,
			goal{Scenario: sc, Metric: "threads", LoopsPlus: 8, Text: "≤ event loops + 8"},
			goal{Scenario: sc, Metric: "rss_mb", Family: "haproxy", Max: 1, Text: "≤ the best HAProxy setting"})
	}
	return out
}

// rowOf is the table row g judges.
func (g goal) rowOf(res *results) (rowDef, bool) {
	for _, r := range res.rows() {
		if r.Scenario == g.Scenario && r.Metric == g.Metric {
			return r, true
		}
	}
	return rowDef{}, false
}

// judge checks g for column p of row r: the cell text and whether it holds;
// ok is false when something it needs was not measured.
func (g goal) judge(res *results, r rowDef, p pick) (cell string, met, ok bool) {
	if !p.ok() {
		return "not measured", false, false
	}
	switch {
	case g.Family != "":
		ref := bestOf(res, r, g.Family)
		if !ref.ok() || ref.s.Median == 0 {
			return "no " + g.Family + " figure", false, false
		}
		x := p.s.Median / ref.s.Median
		return fmt.Sprintf("%s ÷ %s (%s) = %.2f×", r.Format(p.s.Median), r.Format(ref.s.Median), ref.t.setting(), x), x <= g.Max, true
	case g.Base != "":
		base := stat(res.Runs, g.Base, p.t.Name, g.Metric)
		if base.N == 0 || base.Median == 0 {
			return "no " + g.Base + " figure", false, false
		}
		x := p.s.Median / base.Median
		return fmt.Sprintf("%s ÷ %s = %.2f×", r.Format(p.s.Median), r.Format(base.Median), x), x <= g.Max, true
	default:
		loops := p.t.Threads
		if loops == 0 {
			loops = res.Machine.NProc // the default: one loop per core
		}
		return fmt.Sprintf("%s, loops + 8 = %d", r.Format(p.s.Median), loops+g.LoopsPlus), p.s.Median <= float64(loops+g.LoopsPlus), true
	}
}

// writeGoals is the table of goals: for each, tierlb at its best setting of
// the row and at its default.
func writeGoals(b *strings.Builder, res *results) {
	var lines []string
	for _, g := range goals() {
		r, found := g.rowOf(res)
		if !found {
			continue
		}
		best, def := bestOf(res, r, "tierlb"), defaultOf(res, r, "tierlb")
		if !best.ok() && !def.ok() {
			continue
		}
		verdict := func(p pick) string {
			cell, met, ok := g.judge(res, r, p)
			switch {
			case !ok:
				return cell
			case met:
				return p.t.setting() + ": " + cell + ", **met**"
			}
			return p.t.setting() + ": " + cell + ", not met"
		}
		lines = append(lines, fmt.Sprintf("| %s | %s | %s | %s |", r.Label, g.Text, verdict(best), verdict(def)))
	}
	if len(lines) == 0 {
		return
	}
	b.WriteString("\n## Goals\n\nEach goal the issues set, for tierlb at its best setting of the row and at its default " +
		"(medians; a ratio is tierlb ÷ the reference).\n\n")
	b.WriteString("| row | goal | tierlb, best setting | tierlb default |\n|---|---|---|---|\n")
	b.WriteString(strings.Join(lines, "\n") + "\n")
}

// writeServiceCounts is the service-count scenarios side by side: per
// column and service count, threads, RSS, req/s and CPU per 100k requests.
func writeServiceCounts(b *strings.Builder, res *results, cols []targetInfo) {
	var ran []struct{ scenario, label string }
	for _, sv := range serviceRows() {
		if ranScenario(res, sv.scenario) {
			ran = append(ran, sv)
		}
	}
	if len(ran) == 0 {
		return
	}
	b.WriteString("\n## Across service counts\n\nThe same 200 keep-alive connections spread over 1, 20 and 200 services " +
		"(one port each) and over one service on a 200-port range; threads, RSS and descriptors summed over the proxy's " +
		"processes halfway through the load, with every connection open (RSS: the larger of that and the end). Medians.\n\n")
	b.WriteString("| column | services | threads | RSS MB | fds | req/s | CPU s per 100k requests |\n|---|---|---|---|---|---|---|\n")
	for _, t := range cols {
		for _, sv := range ran {
			at := func(metric string, f func(float64) string) string {
				return cell(stat(res.Runs, sv.scenario, t.Name, metric), f)
			}
			if !ranOn(res, sv.scenario, t.Name) {
				continue
			}
			if why := skipped(res, sv.scenario, t.Name); why != "" {
				fmt.Fprintf(b, "| %s | %s | skipped: %s | | | | |\n", t.Label, strings.TrimPrefix(sv.label, "200 conns over "), why)
				continue
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s |\n", t.Label, strings.TrimPrefix(sv.label, "200 conns over "),
				at("threads", fmt0), at("rss_mb", fmt1), at("fds", fmt0), at("rps", fmtRate), at("cpu_per_100k", fmt2))
		}
	}
}

// skipped is why every run of scenario on target was skipped (the first
// note's words after "skipped: ", up to the first semicolon), or "".
func skipped(res *results, scenario, target string) string {
	why := ""
	for _, r := range res.Runs {
		if r.Scenario != scenario || r.Target != target {
			continue
		}
		if len(r.Metrics) > 0 || r.Err != "" {
			return ""
		}
		for _, n := range r.Notes {
			if _, after, ok := strings.Cut(n, "skipped: "); ok && why == "" {
				why, _, _ = strings.Cut(after, ";")
			}
		}
	}
	return why
}

// ranOn reports whether scenario ran on target (a skipped run counts: its
// row shows "–" and the notes say why).
func ranOn(res *results, scenario, target string) bool {
	return slices.ContainsFunc(res.Runs, func(r runRecord) bool { return r.Scenario == scenario && r.Target == target })
}
