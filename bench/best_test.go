package main

import (
	"strings"
	"testing"
)

func rowByMetric(t *testing.T, scenario, metric string) rowDef {
	t.Helper()
	for _, r := range mainRows(0) {
		if r.Scenario == scenario && r.Metric == metric {
			return r
		}
	}
	t.Fatalf("no row %s/%s", scenario, metric)
	return rowDef{}
}

// TestBestOfFollowsTheRow: the best setting is chosen per row and per
// direction, so one proxy's best can differ between rows.
func TestBestOfFollowsTheRow(t *testing.T) {
	res := sampleResults()
	cpu, rps := rowByMetric(t, "keepalive", "cpu_per_100k"), rowByMetric(t, "keepalive", "rps")
	tests := []struct {
		name   string
		row    rowDef
		family string
		want   string
		median float64
	}{
		{"tierlb cheapest at 1 loop", cpu, "tierlb", "tierlb-loops1", 0.94},
		{"tierlb fastest at its default", rps, "tierlb", "tierlb", 31000},
		{"HAProxy cheapest at nbthread 1", cpu, "haproxy", "haproxy-nbthread1", 1.1},
		// nbthread 2 failed its second round: its one good round counts.
		{"HAProxy fastest at nbthread 2", rps, "haproxy", "haproxy-nbthread2", 24000},
		{"nothing measured", cpu, "naive-go", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := bestOf(res, tt.row, tt.family)
			if p.t.Name != tt.want || (p.ok() && p.s.Median != tt.median) {
				t.Errorf("best %q at %v, want %q at %v", p.t.Name, p.s.Median, tt.want, tt.median)
			}
		})
	}
	for _, row := range []rowDef{cpu, rps} {
		if p := bestPeer(res, row); p.t.Name != "nginx-workers2" {
			t.Errorf("%s: best peer %q, want nginx-workers2 (better than either HAProxy setting)", row.Label, p.t.Name)
		}
	}
	if p := defaultOf(res, rps, "tierlb"); p.t.Name != "tierlb" || p.s.Median != 31000 {
		t.Errorf("default tierlb %q at %v", p.t.Name, p.s.Median)
	}
}

// TestRatioPairsRounds: the median is the ratio of the medians; the spread
// comes from the rounds both columns have, each divided by its own
// round's peer.
func TestRatioPairsRounds(t *testing.T) {
	res := sampleResults()
	cpu := rowByMetric(t, "keepalive", "cpu_per_100k")
	a, b := bestOf(res, cpu, "tierlb"), bestOf(res, cpu, "haproxy")
	got := ratio(res, cpu, a, b)
	// 0.94 / 1.10; rounds 0.88 / 1.0 and 1.0 / 1.2.
	if !near(got.Median, 0.94/1.1) || !near(got.Min, 1.0/1.2) || !near(got.Max, 0.88) || got.N != 2 {
		t.Errorf("ratio %+v", got)
	}
	// HAProxy nbthread 2 has round 1 only: one pair.
	one := ratio(res, cpu, a, pick{res.Targets[4], stat(res.Runs, "keepalive", "haproxy-nbthread2", "cpu_per_100k")})
	if one.N != 1 || !near(one.Min, 0.88/2.2) {
		t.Errorf("one-round ratio %+v", one)
	}
	if r := ratio(res, cpu, a, pick{}); r.N != 0 || fmtRatio(r) != "–" {
		t.Errorf("ratio to nothing %+v", r)
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

func TestBestPeerTable(t *testing.T) {
	md := markdown(sampleResults())
	for _, want := range []string{
		"## tierlb against the best peer setting, row by row",
		// CPU: tierlb's best is 1 loop, HAProxy's nbthread 1, and nginx at
		// 2 workers is the best peer: 0.94 ÷ 0.85 (rounds 0.88 ÷ 0.80,
		// 1.00 ÷ 0.90); the default 1.10 ÷ 0.85; 0.94 ÷ HAProxy's 1.10.
		"| proxy CPU s per 100k keep-alive requests | lower | 1 loop (GOMAXPROCS=1): 0.94 (0.88–1.00) | default (2 loops): 1.10 (1.00–1.20) | nbthread 1: 1.10 (1.00–1.20) | **2 workers: 0.85 (0.80–0.90)** | 1.11× (1.10–1.11) | 1.29× (1.25–1.33) | 0.85× (0.83–0.88) |",
		// req/s: tierlb's best is its default, HAProxy's nbthread 2 (one
		// round, so no spread against it).
		"| keep-alive requests, 64 conns: req/s | higher | default (2 loops): 31.0k (30.0k–32.0k) | default (2 loops): 31.0k (30.0k–32.0k) | nbthread 2: 24.0k | **2 workers: 29.0k** | 1.07× (1.03–1.10) | 1.07× (1.03–1.10) | 1.29× |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q\n%s", want, md)
		}
	}
	// CPU rows lead the table.
	i, j := strings.Index(md, "| proxy CPU s per 100k keep-alive requests | lower"), strings.Index(md, "| keep-alive requests, 64 conns: req/s | higher")
	if i < 0 || j < i {
		t.Error("CPU per request does not come before req/s")
	}
	if strings.Contains(md, "Before and after") {
		t.Error("a before/after table without a baseline")
	}
	res := sampleResults()
	res.Targets = res.Targets[1:]
	if md := markdown(res); strings.Contains(md, "Ratios against direct") {
		t.Error("a table of ratios against direct without a direct column")
	}
}

// TestBeforeAfter: with a baseline build in the same rounds, the report
// sets it against the work tree's, best against best and default against
// default, besides giving it a best-peer table of its own.
func TestBeforeAfter(t *testing.T) {
	res := sampleResults()
	res.Targets = append(res.Targets,
		targetInfo{Name: "tierlb-base", Label: "tierlb@abc1234 default (2 loops)", Family: "tierlb-base", Default: true, Setting: "default (2 loops)"},
		targetInfo{Name: "tierlb-base-loops1", Label: "tierlb@abc1234 1 loop (GOMAXPROCS=1)", Family: "tierlb-base", Threads: 1, Setting: "1 loop (GOMAXPROCS=1)"})
	for round, cpu := range []float64{1.1, 1.3} {
		res.Runs = append(res.Runs,
			runRecord{Round: round + 1, Scenario: "keepalive", Target: "tierlb-base", outcome: outcome{Metrics: map[string]float64{"cpu_per_100k": cpu, "rps": 30000}}},
			runRecord{Round: round + 1, Scenario: "keepalive", Target: "tierlb-base-loops1", outcome: outcome{Metrics: map[string]float64{"cpu_per_100k": cpu - 0.1, "rps": 20000}}})
	}
	md := markdown(res)
	for _, want := range []string{
		"## tierlb@abc1234 against the best peer setting, row by row",
		"## Before and after: tierlb (after) against tierlb@abc1234 (before), same rounds",
		// Best: 0.94 after ÷ 1.10 before (rounds 0.88 ÷ 1.0, 1.0 ÷ 1.2);
		// default: 1.10 ÷ 1.20 (rounds 1.0 ÷ 1.1, 1.2 ÷ 1.3).
		"| proxy CPU s per 100k keep-alive requests | lower | 1 loop (GOMAXPROCS=1): 1.10 (1.00–1.20) | 1 loop (GOMAXPROCS=1): 0.94 (0.88–1.00) | 0.85× (0.83–0.88) | default (2 loops): 1.20 (1.10–1.30) | default (2 loops): 1.10 (1.00–1.20) | 0.92× (0.91–0.92) |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q\n%s", want, md)
		}
	}
}

// TestLegacyResults: a results.json from before settings were compared
// (one column per proxy, no family) still renders, each proxy at its one
// setting, so the committed results can be re-rendered.
func TestLegacyResults(t *testing.T) {
	res := &results{Options: options{Rounds: 1},
		Targets: []targetInfo{{Name: "tierlb", Label: "tierlb (splice)"}, {Name: "haproxy", Label: "HAProxy (splice)"}}}
	res.Runs = []runRecord{
		{Round: 1, Scenario: "close", Target: "tierlb", outcome: outcome{Metrics: map[string]float64{"cpu_per_100k": 7.5}}},
		{Round: 1, Scenario: "close", Target: "haproxy", outcome: outcome{Metrics: map[string]float64{"cpu_per_100k": 8.3}}},
	}
	md := markdown(res)
	want := "| proxy CPU s per 100k new connections | lower | tierlb (splice): 7.50 | tierlb (splice): 7.50 | **HAProxy (splice): 8.30** | – | 0.90× | 0.90× | 0.90× |"
	if !strings.Contains(md, want) {
		t.Errorf("markdown lacks %q\n%s", want, md)
	}
}

// TestGoals: each goal is judged against its reference: a peer's best
// setting, tierlb's own 1-service figure at the same setting, or the
// setting's loops plus 8.
func TestGoals(t *testing.T) {
	res := sampleResults()
	res.Machine.NProc = 2
	add := func(scen, target string, m map[string]float64) {
		res.Runs = append(res.Runs, runRecord{Round: 1, Scenario: scen, Target: target, outcome: outcome{Metrics: m}})
	}
	add("sni", "tierlb", map[string]float64{"cpu_us_per_conn": 90})
	add("sni", "tierlb-loops1", map[string]float64{"cpu_us_per_conn": 80})
	add("sni", "haproxy-nbthread1", map[string]float64{"cpu_us_per_conn": 100})
	add("sni", "haproxy-nbthread2", map[string]float64{"cpu_us_per_conn": 120})
	add("services1", "tierlb", map[string]float64{"cpu_per_100k": 1.0, "threads": 4})
	add("services1", "tierlb-loops1", map[string]float64{"cpu_per_100k": 1.0, "threads": 3})
	add("services200", "tierlb", map[string]float64{"cpu_per_100k": 1.04, "threads": 10, "rss_mb": 30})
	add("services200", "tierlb-loops1", map[string]float64{"cpu_per_100k": 1.5, "threads": 9, "rss_mb": 20})
	add("services200", "haproxy-nbthread1", map[string]float64{"cpu_per_100k": 1.2, "threads": 1, "rss_mb": 25})
	var b strings.Builder
	writeGoals(&b, res)
	md := b.String()
	for _, want := range []string{
		// 80 ÷ 100 = 0.80 ≤ 0.85 at 1 loop; the default's 90 is 0.90.
		"| proxy CPU µs per TLS connection routed by SNI | ≤ 0.85× the best HAProxy setting | 1 loop (GOMAXPROCS=1): 80.0 ÷ 100.0 (nbthread 1) = 0.80×, **met** | default (2 loops): 90.0 ÷ 100.0 (nbthread 1) = 0.90×, not met |",
		// The default is best at 200 services: 1.04 against its own 1.00.
		"| within 5% of its own 1-service figure | default (2 loops): 1.04 ÷ 1.00 = 1.04×, **met** |",
		"| ≤ 0.9× the best HAProxy setting | default (2 loops): 1.04 ÷ 1.20 (nbthread 1) = 0.87×, **met** |",
		// 1 loop: 9 threads > 1 + 8; the default's 10 = 2 + 8.
		"| ≤ event loops + 8 | 1 loop (GOMAXPROCS=1): 9, loops + 8 = 9, **met** | default (2 loops): 10, loops + 8 = 10, **met** |",
		"| ≤ the best HAProxy setting | 1 loop (GOMAXPROCS=1): 20.0 ÷ 25.0 (nbthread 1) = 0.80×, **met** | default (2 loops): 30.0 ÷ 25.0 (nbthread 1) = 1.20×, not met |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("goals lack\n%s\nin\n%s", want, md)
		}
	}
	if strings.Contains(md, "udp") {
		t.Errorf("a goal for a scenario that did not run:\n%s", md)
	}
	res.Runs = append(res.Runs, runRecord{Round: 1, Scenario: "range200", Target: "tierlb",
		outcome: outcome{Notes: []string{"start tierlb: skipped: needs port ranges in listen (issue 17); this tierlb says: ..."}}})
	b.Reset()
	writeServiceCounts(&b, res, res.columns())
	for _, want := range []string{
		"| tierlb default (2 loops) | 200 services | 10 | 30.0 |",
		"| tierlb default (2 loops) | 1 service on a 200-port range | skipped: needs port ranges in listen (issue 17) |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("service counts lack %q:\n%s", want, b.String())
		}
	}
}
