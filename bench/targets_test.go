package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestTargetsPerSetting(t *testing.T) {
	all := allTargets([]int{1, 2}, 2, "")
	var names []string
	for _, tg := range all {
		names = append(names, tg.Name)
	}
	want := []string{"direct", "tierlb", "tierlb-loops1", "tierlb-copy",
		"haproxy-nbthread1", "haproxy-nbthread1-splice-auto", "haproxy-nbthread1-nosplice",
		"haproxy-nbthread2", "haproxy-nbthread2-splice-auto", "haproxy-nbthread2-nosplice",
		"nginx-workers1", "nginx-workers2", "naive-go", "splice-relay", "epoll-relay", "uring-relay"}
	if !slices.Equal(names, want) {
		t.Errorf("targets %v, want %v (the default is not run again as 2 loops)", names, want)
	}
	tests := []struct {
		sel  []string
		base string
		want []string
	}{
		{[]string{"haproxy-nbthread1-nosplice", "haproxy-nbthread2"}, "", []string{"haproxy-nbthread1-nosplice", "haproxy-nbthread2"}},
		{[]string{"tierlb", "nginx-workers1"}, "", []string{"tierlb", "tierlb-loops1", "nginx-workers1"}},
		{[]string{"tierlb"}, "main", []string{"tierlb", "tierlb-loops1", "tierlb-base", "tierlb-base-loops1"}},
		{[]string{"direct", "tierlb-copy"}, "main", []string{"direct", "tierlb-copy", "splice-relay", "epoll-relay", "uring-relay"}},
		{[]string{"splice-relay", "tierlb-copy"}, "", []string{"tierlb-copy", "splice-relay"}},
		{[]string{"tierlb", "epoll-relay", "uring-relay"}, "", []string{"tierlb", "tierlb-loops1", "epoll-relay", "uring-relay"}},
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

// TestHAProxySpliceSettings: HAProxy runs at every nbthread in each splice
// mode, and strace holds each mode to what it promises.
func TestHAProxySpliceSettings(t *testing.T) {
	got := map[string]string{}
	for _, tg := range selectTargets(allTargets([]int{1, 2}, 2, ""), []string{"haproxy"}) {
		got[tg.Name] = fmt.Sprintf("%s|expect %v|forbid %v", tg.Setting, tg.ExpectSplice, tg.ForbidSplice)
	}
	want := map[string]string{
		"haproxy-nbthread1":             "nbthread 1, splice both ways|expect true|forbid false",
		"haproxy-nbthread1-splice-auto": "nbthread 1, splice-auto|expect false|forbid false",
		"haproxy-nbthread1-nosplice":    "nbthread 1, nosplice|expect false|forbid true",
		"haproxy-nbthread2":             "nbthread 2, splice both ways|expect true|forbid false",
		"haproxy-nbthread2-splice-auto": "nbthread 2, splice-auto|expect false|forbid false",
		"haproxy-nbthread2-nosplice":    "nbthread 2, nosplice|expect false|forbid true",
	}
	if !maps.Equal(got, want) {
		t.Errorf("HAProxy targets\n%v\nwant\n%v", got, want)
	}
}

// TestScenarioFamilies: the SNI, UDP and service-count scenarios run on the
// proxies they compare (the baseline wherever tierlb runs), and the group
// names expand.
func TestScenarioFamilies(t *testing.T) {
	runsOn := map[string][]string{}
	for _, s := range allScenarios() {
		for _, tg := range allTargets([]int{1, 2}, 2, "main") {
			if s.runsOn(tg) {
				runsOn[s.Name] = append(runsOn[s.Name], tg.Family)
			}
		}
		runsOn[s.Name] = slices.Compact(runsOn[s.Name])
	}
	for name, want := range map[string][]string{
		"keepalive":   {"direct", "tierlb", "tierlb-base", "tierlb-copy", "haproxy", "nginx", "naive-go", "epoll-relay", "uring-relay"},
		"close":       {"direct", "tierlb", "tierlb-base", "tierlb-copy", "haproxy", "nginx", "naive-go", "epoll-relay", "uring-relay"},
		"services200": {"tierlb", "tierlb-base", "haproxy", "nginx", "epoll-relay", "uring-relay"},
		"bulk":        {"direct", "tierlb", "tierlb-base", "tierlb-copy", "haproxy", "nginx", "naive-go", "splice-relay"},
		"iperf":       {"direct", "tierlb", "tierlb-base", "tierlb-copy", "haproxy", "nginx", "naive-go", "splice-relay"},
		"idle":        {"tierlb", "tierlb-base", "tierlb-copy", "haproxy", "nginx", "naive-go"},
		"sni":         {"tierlb", "tierlb-base", "haproxy", "nginx"},
		"udp-queries": {"tierlb", "tierlb-base", "nginx"},
		"udp-stream":  {"tierlb", "tierlb-base", "nginx"},
		"range200":    {"tierlb", "tierlb-base", "haproxy", "nginx"},
	} {
		if !slices.Equal(runsOn[name], want) {
			t.Errorf("%s runs on %v, want %v", name, runsOn[name], want)
		}
	}
	o, err := parseFlags([]string{"--scenarios", "keepalive,services,udp", "--once", "services"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"keepalive", "services1", "services20", "services200", "range200", "udp-queries", "udp-stream"}
	if !slices.Equal(o.Scenarios, want) || len(o.Once) != 4 {
		t.Errorf("scenarios %v once %v, want %v and the four service scenarios", o.Scenarios, o.Once, want)
	}
	for _, name := range o.Scenarios {
		if !slices.Contains(scenarioNames(), name) {
			t.Errorf("%s is not a scenario", name)
		}
	}
}

// TestTierlbLoopSetting: a loop count goes in as --loops where the binary
// has the flag, else as GOMAXPROCS; the default column gets neither, and
// the bench's own GOMAXPROCS and TIERLB_* never reach tierlb.
func TestTierlbLoopSetting(t *testing.T) {
	environ := []string{"PATH=/bin", "GOMAXPROCS=7", "TIERLB_ENGINE_LOOPS=3", "HOME=/root"}
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
	with := without + "      --loops int              event loops of the whole process, shared by every service; 0 = one per core (engine.loops)\n"
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
