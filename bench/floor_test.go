package main

import (
	"strings"
	"testing"
)

// floorResults: two rounds of bulk on direct, the relay, tierlb at two
// settings and HAProxy; round 2 of HAProxy failed.
func floorResults() *results {
	res := &results{
		Options: options{Rounds: 2},
		Targets: []targetInfo{
			{Name: "direct", Label: "direct", Family: "direct"},
			{Name: "tierlb", Label: "tierlb default (2 loops)", Family: "tierlb", Default: true, Setting: "default (2 loops)"},
			{Name: "tierlb-loops1", Label: "tierlb 1 loop", Family: "tierlb", Threads: 1, Setting: "1 loop"},
			{Name: "haproxy-nbthread1", Label: "HAProxy nbthread 1", Family: "haproxy", Threads: 1, Setting: "nbthread 1"},
			{Name: "splice-relay", Label: "splice relay (floor)", Family: "splice-relay"},
		},
	}
	add := func(round int, target string, cpu, all float64) {
		m := map[string]float64{"all_cpu_per_gb": all, "mbps": 1000}
		if cpu > 0 {
			m["cpu_per_gb"] = cpu
		}
		res.Runs = append(res.Runs, runRecord{Round: round, Scenario: "bulk", Target: target, outcome: outcome{Metrics: m}})
	}
	add(1, "direct", 0, 1.0)
	add(2, "direct", 0, 1.2)
	add(1, "splice-relay", 0.20, 1.2)
	add(2, "splice-relay", 0.30, 1.6)
	add(1, "tierlb", 0.30, 1.4)
	add(2, "tierlb", 0.36, 1.8)
	add(1, "tierlb-loops1", 0.24, 1.3)
	add(2, "tierlb-loops1", 0.33, 1.7)
	add(1, "haproxy-nbthread1", 0.40, 1.6)
	res.Runs = append(res.Runs, runRecord{Round: 2, Scenario: "bulk", Target: "haproxy-nbthread1", Err: "haproxy exited"})
	return res
}

func TestPerRound(t *testing.T) {
	res := floorResults()
	tests := []struct {
		name    string
		targets []string
		f       func([]float64) (float64, bool)
		want    spread
	}{
		// 1.4−1.0, 1.8−1.2
		{"over direct", []string{"tierlb", "direct"}, overDirect, spread{Median: 0.5, Min: 0.4, Max: 0.6, N: 2}},
		// (1.4−1.0)/(1.2−1.0) = 2, (1.8−1.2)/(1.6−1.2) = 1.5
		{"excess ratio", []string{"tierlb", "splice-relay", "direct"}, excessRatio, spread{Median: 1.75, Min: 1.5, Max: 2, N: 2}},
		// Only round 1: round 2's run failed.
		{"a failed round is left out", []string{"haproxy-nbthread1", "direct"}, overDirect, spread{Median: 0.6, Min: 0.6, Max: 0.6, N: 1}},
		{"an absent target", []string{"nginx-workers1", "direct"}, overDirect, spread{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := perRound(res, "bulk", "all_cpu_per_gb", tt.targets, tt.f)
			if !near(got.Median, tt.want.Median) || !near(got.Min, tt.want.Min) || !near(got.Max, tt.want.Max) || got.N != tt.want.N {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestExcessRatio(t *testing.T) {
	tests := []struct {
		name   string
		v      []float64
		want   float64
		wantOK bool
	}{
		{"twice the floor's excess", []float64{3, 2, 1}, 2, true},
		{"the floor itself", []float64{2, 2, 1}, 1, true},
		{"below one hop", []float64{0.5, 2, 1}, -0.5, true},
		{"a floor no dearer than one hop", []float64{3, 1, 1}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := excessRatio(tt.v)
			if ok != tt.wantOK || (ok && !near(got, tt.want)) {
				t.Errorf("got %v %v, want %v %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestWriteFloor(t *testing.T) {
	res := floorResults()
	var b strings.Builder
	writeFloor(&b, res)
	md := b.String()
	for _, want := range []string{
		// Floor median 0.25; tierlb best is 1 loop (median 0.285, shown 0.29, of 0.24
		// and 0.33), per round 1.20× and 1.10×; default 0.33 ÷ 0.25 =
		// 1.32×, per round 1.50 and 1.20; HAProxy 0.40 ÷ 0.25 = 1.60×.
		"| proxy CPU s per GB, 1 MiB responses | 0.25 (0.20–0.30) | 1 loop: 0.29 (0.24–0.33) | default (2 loops): 0.33 (0.30–0.36) | nbthread 1: 0.40 | – | 1.14× (1.10–1.20) | 1.32× (1.20–1.50) | 1.60× | – |",
		// Over direct: relay 0.2, 0.4; tierlb 1 loop 0.3, 0.5 (÷ floor 1.5,
		// 1.25); default 0.4, 0.6 (2, 1.5); HAProxy 0.6 (3) in round 1.
		"| bulk | 1.10 (1.00–1.20) | splice relay (floor): 0.30 (0.20–0.40) | 1.00× | 1 loop: 0.40 (0.30–0.50) | 1.38× (1.25–1.50) | default (2 loops): 0.50 (0.40–0.60) | 1.75× (1.50–2.00) | nbthread 1: 0.60 | 3.00× | – | – |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("floor section lacks\n%s\n%s", want, md)
		}
	}
	// Without the relay column there is no floor and no section.
	res.Targets = res.Targets[:4]
	b.Reset()
	writeFloor(&b, res)
	if b.Len() != 0 {
		t.Errorf("a floor section without the relay:\n%s", b.String())
	}
}
