package main

import (
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want spread
	}{
		{name: "none", in: nil, want: spread{}},
		{name: "one", in: []float64{5}, want: spread{Median: 5, Min: 5, Max: 5, N: 1}},
		{name: "odd", in: []float64{9, 1, 5}, want: spread{Median: 5, Min: 1, Max: 9, N: 3}},
		{name: "even", in: []float64{4, 1, 2, 3}, want: spread{Median: 2.5, Min: 1, Max: 4, N: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := summarize(tt.in); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestAdvantage(t *testing.T) {
	tests := []struct {
		name   string
		a, ref float64
		higher bool
		want   float64
	}{
		{name: "faster", a: 30, ref: 20, higher: true, want: 1.5},
		{name: "cheaper", a: 1, ref: 2, higher: false, want: 2},
		{name: "dearer", a: 4, ref: 2, higher: false, want: 0.5},
		{name: "zero ref", a: 4, ref: 0, higher: true, want: 0},
		{name: "zero cost", a: 0, ref: 2, higher: false, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := advantage(tt.a, tt.ref, tt.higher); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// sampleResults: two rounds of keepalive on each proxy at two settings
// (tierlb at its default and at 1 loop), strace, one failed run. The best
// setting differs by row: tierlb is cheapest at 1 loop and fastest at its
// default; HAProxy is cheapest at nbthread 1 and fastest at nbthread 2
// (its second round failed); nginx at 2 workers beats both HAProxy
// settings on both rows.
func sampleResults() *results {
	res := &results{
		Date: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC), Command: "go run ./bench",
		Options:  options{Rounds: 2, Duration: 10 * time.Second, CliffConns: []int{16, 256}},
		Versions: map[string]string{"wrk": "wrk 4.1.0"}, Settings: map[string]string{"haproxy nbthread": "1, 2"},
		Targets: []targetInfo{
			{Name: "direct", Label: "direct", Family: "direct"},
			{Name: "tierlb", Label: "tierlb default (2 loops)", Family: "tierlb", Default: true, Setting: "default (2 loops)"},
			{Name: "tierlb-loops1", Label: "tierlb 1 loop (GOMAXPROCS=1)", Family: "tierlb", Threads: 1, Setting: "1 loop (GOMAXPROCS=1)"},
			{Name: "haproxy-nbthread1", Label: "HAProxy <splice> nbthread 1", Family: "haproxy", Threads: 1, Setting: "nbthread 1"},
			{Name: "haproxy-nbthread2", Label: "HAProxy <splice> nbthread 2", Family: "haproxy", Threads: 2, Setting: "nbthread 2"},
			{Name: "nginx-workers1", Label: "nginx 1 worker", Family: "nginx", Threads: 1, Setting: "1 worker"},
			{Name: "nginx-workers2", Label: "nginx 2 workers", Family: "nginx", Threads: 2, Setting: "2 workers"},
			{Name: "naive-go", Label: "naive Go", Family: "naive-go", Unavailable: "not built"},
		},
	}
	add := func(round int, scen, target string, m map[string]float64, notes ...string) {
		res.Runs = append(res.Runs, runRecord{Round: round, Scenario: scen, Target: target, Load1: 1.5,
			outcome: outcome{Metrics: m, Notes: notes}})
	}
	ka := func(target string, rps1, cpu1, rps2, cpu2 float64) {
		add(1, "keepalive", target, map[string]float64{"rps": rps1, "cpu_per_100k": cpu1})
		add(2, "keepalive", target, map[string]float64{"rps": rps2, "cpu_per_100k": cpu2})
	}
	add(1, "keepalive", "direct", map[string]float64{"rps": 40000})
	add(2, "keepalive", "direct", map[string]float64{"rps": 44000})
	ka("tierlb", 30000, 1.0, 32000, 1.2)
	ka("tierlb-loops1", 26000, 0.88, 28000, 1.0)
	ka("haproxy-nbthread1", 20000, 1.0, 22000, 1.2)
	add(1, "keepalive", "haproxy-nbthread2", map[string]float64{"rps": 24000, "cpu_per_100k": 2.2})
	res.Runs = append(res.Runs, runRecord{Round: 2, Scenario: "keepalive", Target: "haproxy-nbthread2", Err: "haproxy exited"})
	ka("nginx-workers1", 25000, 1.5, 25000, 1.5)
	ka("nginx-workers2", 29000, 0.8, 29000, 0.9)
	add(1, "strace", "tierlb", map[string]float64{"zero_copy_ok": 0}, "FAILURE: no splice(2) calls during bulk transfer")
	return res
}

func TestMarkdown(t *testing.T) {
	md := markdown(sampleResults())
	for _, want := range []string{
		"| keep-alive requests, 64 conns: req/s | 42.0k (40.0k–44.0k) | 31.0k (30.0k–32.0k) | 27.0k (26.0k–28.0k) | 21.0k (20.0k–22.0k) | 24.0k | 25.0k | 29.0k |",
		"| proxy CPU s per 100k keep-alive requests | – | 1.10 (1.00–1.20) | 0.94 (0.88–1.00) | 1.10 (1.00–1.20) | 2.20 | 1.50 | 0.85 (0.80–0.90) |",
		// 42k / 42k and 31k / 42k
		"| keep-alive requests, 64 conns: req/s (higher is better) | 1.00× | 0.74× |",
		// Against the best HAProxy setting of the row: nbthread 2's 24k for
		// req/s, nbthread 1's 1.10 for CPU.
		"| keep-alive requests, 64 conns: req/s (higher is better) | 1.75× | 1.29× |",
		"| proxy CPU s per 100k keep-alive requests (lower is better) | – | 1.00× |",
		"**naive Go not measured**: not built",
		"**tierlb default (2 loops)**, round 1: FAILURE: no splice(2) calls",
		"round 2, keepalive, HAProxy <splice> nbthread 2: **error**: haproxy exited",
		"1-minute load average",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q\n%s", want, md)
		}
	}
	if strings.Contains(md, "iperf3 stream") {
		t.Error("rows of scenarios that did not run are shown")
	}
	// The headline comes before the table of every column.
	if i, j := strings.Index(md, "against the best peer setting"), strings.Index(md, "## Medians of every column"); i < 0 || i > j {
		t.Error("the best-peer table does not come first")
	}
}

func TestChartIsWellFormedSVG(t *testing.T) {
	svg := chartSVG(sampleResults())
	dec := xml.NewDecoder(strings.NewReader(svg))
	rects := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("invalid XML: %v\n%s", err, svg)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			rects++
		}
	}
	// Background; legend boxes for every column but HAProxy's (direct, two
	// tierlb, two nginx); bars: CPU for the four proxies, req/s for those
	// and direct.
	if rects != 1+5+4+5 {
		t.Errorf("%d rects, want 15\n%s", rects, svg)
	}
	// tierlb's default against HAProxy's best per row: 31k ÷ 24k on req/s.
	if !strings.Contains(svg, "HAProxy") || !strings.Contains(svg, "1.29") {
		t.Errorf("chart lacks the tierlb ratio 1.29\n%s", svg)
	}
}

func TestWriteResults(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	if err := writeResults(dir, sampleResults()); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"results.md", "results.svg", "results.json"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestCliffVerdict(t *testing.T) {
	res := &results{Options: options{CliffConns: []int{16, 64, 256}}}
	add := func(n int, mbps, cpu, errs float64) {
		res.Runs = append(res.Runs, runRecord{Scenario: "cliff", Target: "t", outcome: outcome{Metrics: map[string]float64{
			"mbps@" + itoa(n): mbps, "cpu_per_gb@" + itoa(n): cpu, "errors@" + itoa(n): errs}}})
	}
	add(16, 1000, 0.5, 0)
	add(64, 990, 0.9, 0)
	add(256, 400, 2, 3)
	if got := cliffVerdict(res, "t"); !strings.Contains(got, "at 64 connections") {
		t.Errorf("verdict %q, want the CPU cliff at 64", got)
	}
}

func itoa(n int) string { return strings.TrimSpace(fmt0(float64(n))) }

func TestRerenderFromJSON(t *testing.T) {
	dir := t.TempDir()
	res := sampleResults()
	share := 0.25
	res.Runs[0].OthersCPU = &share
	if err := writeResults(dir, res); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "results.md"))
	os.Remove(filepath.Join(dir, "results.md"))
	if err := rerender(filepath.Join(dir, "results.json")); err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadFile(filepath.Join(dir, "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Errorf("re-rendered Markdown differs:\n%s\n---\n%s", before, after)
	}
	if !strings.Contains(string(after), "used a median 25%") {
		t.Errorf("the other processes' CPU share is missing:\n%s", after)
	}
}
