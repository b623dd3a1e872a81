package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
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

func TestTargetsPerSetting(t *testing.T) {
	all := allTargets([]int{1, 2}, 2, "")
	var names []string
	for _, tg := range all {
		names = append(names, tg.Name)
	}
	want := []string{"direct", "tierlb", "tierlb-loops1", "tierlb-copy", "haproxy-nbthread1", "haproxy-nbthread2",
		"nginx-workers1", "nginx-workers2", "naive-go"}
	if !slices.Equal(names, want) {
		t.Errorf("targets %v, want %v (the default is not run again as 2 loops)", names, want)
	}
	tests := []struct {
		sel  []string
		base string
		want []string
	}{
		{[]string{"haproxy"}, "", []string{"haproxy-nbthread1", "haproxy-nbthread2"}},
		{[]string{"tierlb", "nginx-workers1"}, "", []string{"tierlb", "tierlb-loops1", "nginx-workers1"}},
		{[]string{"tierlb"}, "main", []string{"tierlb", "tierlb-loops1", "tierlb-base", "tierlb-base-loops1"}},
		{[]string{"direct", "tierlb-copy"}, "main", []string{"direct", "tierlb-copy"}},
	}
	for _, tt := range tests {
		var got []string
		for _, tg := range selectTargets(allTargets([]int{1, 2}, 2, tt.base), tt.sel) {
			got = append(got, tg.Name)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%v (baseline %q): %v, want %v", tt.sel, tt.base, got, tt.want)
		}
	}
}

// TestTierlbLoopSetting: a loop count goes in as --loops where the binary
// has the flag, else as GOMAXPROCS; the default column gets neither, and
// the bench's own GOMAXPROCS and TIERLB_* never reach tierlb.
func TestTierlbLoopSetting(t *testing.T) {
	environ := []string{"PATH=/bin", "GOMAXPROCS=7", "TIERLB_ENGINE=goroutine", "HOME=/root"}
	tests := []struct {
		name     string
		flag     bool
		loops    int
		wantArgs []string
		wantEnv  []string
	}{
		{"default", false, 0, nil, []string{"PATH=/bin", "HOME=/root"}},
		{"default with the flag", true, 0, nil, []string{"PATH=/bin", "HOME=/root"}},
		{"1 loop before the flag", false, 1, nil, []string{"PATH=/bin", "HOME=/root", "GOMAXPROCS=1"}},
		{"1 loop with the flag", true, 1, []string{"--loops", "1"}, []string{"PATH=/bin", "HOME=/root"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &tierlbBuild{bin: "/x/tierlb", name: "tierlb", loopsFlag: tt.flag}
			argv, env := tierlbArgs(tierlbRun{build: b, loops: tt.loops}, "/c.yaml", environ)
			if want := append([]string{"/x/tierlb", "run", "--config", "/c.yaml"}, tt.wantArgs...); !slices.Equal(argv, want) {
				t.Errorf("argv %v, want %v", argv, want)
			}
			if !slices.Equal(env, tt.wantEnv) {
				t.Errorf("env %v, want %v", env, tt.wantEnv)
			}
		})
	}
	tg := &target{Family: "tierlb", Threads: 1}
	(&tierlbBuild{name: "tierlb@abc"}).nameTarget(tg, 2)
	if tg.Label != "tierlb@abc 1 loop (GOMAXPROCS=1)" || tg.Setting != "1 loop (GOMAXPROCS=1)" {
		t.Errorf("label %q, setting %q", tg.Label, tg.Setting)
	}
	def := &target{Family: "tierlb", Default: true}
	(&tierlbBuild{name: "tierlb", loopsFlag: true}).nameTarget(def, 2)
	if def.Label != "tierlb default (2 loops)" {
		t.Errorf("default label %q", def.Label)
	}
}

func TestLoopsFlagInHelp(t *testing.T) {
	without := "Flags:\n  -c, --config string   config file\n      --log-level string   debug\n"
	with := without + "      --loops int              event loops per service; 0 = one per core (engine.loops)\n"
	if loopsFlagRE.MatchString(without) {
		t.Error("found --loops in help without it")
	}
	if !loopsFlagRE.MatchString(with) {
		t.Error("missed --loops")
	}
	if loopsFlagRE.MatchString(without + "      --loopsy int\n") {
		t.Error("took --loopsy for --loops")
	}
}

func TestParseFlagsProxyThreads(t *testing.T) {
	o, err := parseFlags([]string{"--proxy-threads", "2,1,2"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.ProxyThreads, []int{1, 2}) {
		t.Errorf("proxy threads %v, want [1 2]", o.ProxyThreads)
	}
	if _, err := parseFlags([]string{"--proxy-threads", ""}); err == nil {
		t.Error("no setting at all was accepted")
	}
	if o, err := parseFlags([]string{"--once", "strace,cliff"}); err != nil || !slices.Equal(o.Once, []string{"strace", "cliff"}) {
		t.Errorf("--once: %v, %v", o.Once, err)
	}
	if _, err := parseFlags([]string{"--once", "stracе"}); err == nil {
		t.Error("--once took a scenario that does not exist")
	}
}

// TestRoundsRotateAndOnce: every round runs each scenario on every target,
// starting one target further on each round; a --once scenario runs in the
// first round only.
func TestRoundsRotateAndOnce(t *testing.T) {
	e := &env{opts: options{Rounds: 3, Once: []string{"strace"}}, log: slog.New(slog.DiscardHandler),
		procs: newProcs(t.TempDir()), whoamiAddr: "127.0.0.1:1"}
	scen := func(name string) *scenario {
		return &scenario{Name: name, Run: func(context.Context, *env, *running) (outcome, error) { return outcome{}, nil }}
	}
	targets := []*target{{Name: "a"}, {Name: "b"}, {Name: "c"}}
	var got []string
	for _, r := range runRounds(context.Background(), e, []*scenario{scen("keepalive"), scen("strace")}, targets) {
		got = append(got, fmt.Sprintf("%d %s %s", r.Round, r.Scenario, r.Target))
	}
	want := []string{
		"1 keepalive a", "1 keepalive b", "1 keepalive c", "1 strace a", "1 strace b", "1 strace c",
		"2 keepalive b", "2 keepalive c", "2 keepalive a",
		"3 keepalive c", "3 keepalive a", "3 keepalive b",
	}
	if !slices.Equal(got, want) {
		t.Errorf("runs\n%v\nwant\n%v", got, want)
	}
}

// TestPerUnitNeedsEnoughCPU: a run the busy machine starved (6 MB moved,
// no CPU tick read) gets a note, not a "0.00 CPU s per GB" that would win
// its row.
func TestPerUnitNeedsEnoughCPU(t *testing.T) {
	var o outcome
	o.setPerUnit("cpu_per_gb", 0, 6.6e6, 1e9)
	o.setPerUnit("cpu_per_100k", 0.5, 0, 1e5)
	o.setPerUnit("cpu_per_100k", 0.72, 40000, 1e5)
	if _, ok := o.Metrics["cpu_per_gb"]; ok {
		t.Error("a per-GB figure from zero CPU ticks")
	}
	if got := o.Metrics["cpu_per_100k"]; !near(got, 1.8) {
		t.Errorf("cpu_per_100k %v, want 1.8", got)
	}
	if len(o.Notes) != 1 || !strings.Contains(o.Notes[0], "cpu_per_gb not recorded") {
		t.Errorf("notes %q", o.Notes)
	}
}
