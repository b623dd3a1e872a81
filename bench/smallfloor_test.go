package main

import (
	"strings"
	"testing"
)

// smallFloorResults: two rounds of keepalive on the two relays, tierlb at
// two settings and HAProxy nosplice, round 2 of the io_uring relay failed;
// one round of close on the epoll relay and tierlb.
func smallFloorResults() *results {
	res := &results{
		Options: options{Rounds: 2},
		Targets: []targetInfo{
			{Name: "tierlb", Label: "tierlb default (2 loops)", Family: "tierlb", Default: true, Setting: "default (2 loops)"},
			{Name: "tierlb-loops1", Label: "tierlb 1 loop", Family: "tierlb", Threads: 1, Setting: "1 loop"},
			{Name: "haproxy-nbthread1-nosplice", Label: "HAProxy nbthread 1, nosplice", Family: "haproxy", Threads: 1, Setting: "nbthread 1, nosplice"},
			{Name: "epoll-relay", Label: "epoll relay (floor)", Family: "epoll-relay"},
			{Name: "uring-relay", Label: "io_uring relay", Family: "uring-relay"},
		},
	}
	add := func(round int, scenario, target string, cpu float64) {
		res.Runs = append(res.Runs, runRecord{Round: round, Scenario: scenario, Target: target,
			outcome: outcome{Metrics: map[string]float64{"cpu_per_100k": cpu, "rps": 1000}}})
	}
	add(1, "keepalive", "epoll-relay", 2.0)
	add(2, "keepalive", "epoll-relay", 2.5)
	add(1, "keepalive", "uring-relay", 1.0)
	res.Runs = append(res.Runs, runRecord{Round: 2, Scenario: "keepalive", Target: "uring-relay", Err: "uring-relay exited"})
	add(1, "keepalive", "tierlb", 2.6)
	add(2, "keepalive", "tierlb", 3.0)
	add(1, "keepalive", "tierlb-loops1", 2.4)
	add(2, "keepalive", "tierlb-loops1", 2.5)
	add(1, "keepalive", "haproxy-nbthread1-nosplice", 2.8)
	add(2, "keepalive", "haproxy-nbthread1-nosplice", 2.5)
	add(1, "close", "epoll-relay", 10)
	add(1, "close", "tierlb", 15)
	return res
}

func TestWriteSmallFloor(t *testing.T) {
	res := smallFloorResults()
	var b strings.Builder
	writeSmallFloor(&b, res)
	md := b.String()
	for _, want := range []string{
		// Per round: io_uring 1.0 ÷ 2.0 (round 2 failed); tierlb 1 loop 2.4 ÷ 2.0
		// and 2.5 ÷ 2.5; default 2.6 ÷ 2.0 and 3.0 ÷ 2.5; HAProxy 2.8 ÷ 2.0 and
		// 2.5 ÷ 2.5, so the goal is 0.85 × 1.4 and 0.85 × 1.0.
		"| proxy CPU s per 100k keep-alive requests | 2.25 (2.00–2.50) | 1.00 | 1 loop: 2.45 (2.40–2.50) | default (2 loops): 2.80 (2.60–3.00) | nbthread 1, nosplice: 2.65 (2.50–2.80) | – | 0.50× | 1.10× (1.00–1.20) | 1.25× (1.20–1.30) | 1.20× (1.00–1.40) | – | 1.02× (0.85–1.19) |",
		"| proxy CPU s per 100k new connections | 10.00 | – | default (2 loops): 15.00 | default (2 loops): 15.00 | – | – | – | 1.50× | 1.50× | – | – | – |",
		// ÷ the io_uring relay: round 1 only.
		"| proxy CPU s per 100k keep-alive requests | 1.00 | 2.40× | 2.60× | 2.80× | – | 2.38× |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("small floor section lacks\n%s\n%s", want, md)
		}
	}
	if strings.Contains(md, "| proxy CPU s per 100k new connections | 10.00 | – | – |") {
		t.Errorf("a close row ÷ an io_uring relay that did not run:\n%s", md)
	}
	// Without the epoll relay there is no floor and no section.
	res.Targets = append(res.Targets[:3], res.Targets[4])
	b.Reset()
	writeSmallFloor(&b, res)
	if b.Len() != 0 {
		t.Errorf("a small floor section without the epoll relay:\n%s", b.String())
	}
}

// TestRelaysAreNotPeers: the relays cost less than HAProxy and still are
// never the best peer tierlb is held against.
func TestRelaysAreNotPeers(t *testing.T) {
	res := smallFloorResults()
	for _, r := range res.rows() {
		if r.Scenario != "keepalive" || r.Metric != "cpu_per_100k" {
			continue
		}
		if p := bestPeer(res, r); p.t.Name != "haproxy-nbthread1-nosplice" {
			t.Errorf("best peer %q, want HAProxy's", p.t.Name)
		}
		return
	}
	t.Fatal("no keepalive CPU row")
}

func TestQuotient(t *testing.T) {
	tests := []struct {
		name   string
		v      []float64
		want   float64
		wantOK bool
	}{
		{"half", []float64{1, 2}, 0.5, true},
		{"a zero divisor", []float64{1, 0}, 0, false},
		{"a negative divisor", []float64{1, -1}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := quotient(tt.v)
			if ok != tt.wantOK || (ok && !near(got, tt.want)) {
				t.Errorf("got %v %v, want %v %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
	if got, ok := scaledQuotient(0.85)([]float64{2, 1}); !ok || !near(got, 1.7) {
		t.Errorf("0.85 × 2 ÷ 1: got %v %v, want 1.7", got, ok)
	}
}
