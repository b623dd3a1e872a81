package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// results is everything a run produced; results.json holds it raw.
type results struct {
	Date      time.Time         `json:"date"`
	Command   string            `json:"command"`
	Options   options           `json:"options"`
	Machine   machine           `json:"machine"`
	Versions  map[string]string `json:"versions"`
	Settings  map[string]string `json:"settings"`
	Targets   []targetInfo      `json:"targets"`
	Scenarios []scenarioInfo    `json:"scenarios"`
	Runs      []runRecord       `json:"runs"`
	// LoadBefore is the 1-minute load average before the first run.
	LoadBefore float64 `json:"load_before"`
}

type targetInfo struct {
	Name  string `json:"name"`
	Label string `json:"label"`
	// Family is the proxy whatever its setting (tierlb, haproxy, nginx, ...);
	// results from before settings were compared have none, and their
	// name is their family.
	Family string `json:"family,omitempty"`
	// Threads is the setting (nbthread, workers, event loops); 0 for none.
	Threads int `json:"threads,omitempty"`
	// Setting names it as the proxy's config does; Label ends with it.
	Setting string `json:"setting,omitempty"`
	// Default marks tierlb run with no loop setting, as users run it.
	Default     bool   `json:"default,omitempty"`
	Unavailable string `json:"unavailable,omitempty"`
}

// family is t's proxy, for results written before targets had one.
func (t targetInfo) family() string {
	if t.Family != "" {
		return t.Family
	}
	return t.Name
}

// proxyLabel is the proxy's name without the setting: "HAProxy".
func (t targetInfo) proxyLabel() string {
	return strings.TrimSuffix(t.Label, " "+t.Setting)
}

// setting is the setting's name, or the whole label when there is none.
func (t targetInfo) setting() string {
	if t.Setting != "" {
		return t.Setting
	}
	return t.Label
}

type scenarioInfo struct {
	Name string `json:"name"`
	Desc string `json:"desc"`
}

// rowDef is one line of the comparison table.
type rowDef struct {
	Scenario, Metric, Label string
	Higher                  bool // higher is better
	Format                  func(float64) string
	// Reference rows describe the setup, not a proxy; the chart skips them.
	Reference bool
}

// mainRows follow the table, plus the rows the issue asks for
// beyond it (p50, CPU per connection, the fd-limit count, the pipe cliff).
// CPU per unit of work comes first: on a shared machine it is the reading
// that other processes disturb least (they take time slices away from a
// proxy, which lowers its req/s, but do not make its requests dearer).
// Every label stands on its own, so a row can be read out of its table.
func mainRows(cliffMax int) []rowDef {
	rows := []rowDef{
		{"keepalive", "cpu_per_100k", "proxy CPU s per 100k keep-alive requests", false, fmt2, false},
		{"close", "cpu_per_100k", "proxy CPU s per 100k new connections", false, fmt2, false},
		{"bulk", "cpu_per_gb", "proxy CPU s per GB, 1 MiB responses", false, fmt2, false},
		{"iperf", "cpu_per_gb", "proxy CPU s per GB, iperf3 stream", false, fmt2, false},
		{"sni", "cpu_us_per_conn", "proxy CPU µs per TLS connection routed by SNI", false, fmt1, false},
		{"udp-queries", "cpu_per_100k", "proxy CPU s per 100k UDP datagrams, queries from many clients", false, fmt2, false},
		{"udp-stream", "cpu_per_100k", "proxy CPU s per 100k UDP datagrams, one steady iperf3 -u stream", false, fmt2, false},
	}
	for _, sv := range serviceRows() {
		rows = append(rows, rowDef{sv.scenario, "cpu_per_100k", "proxy CPU s per 100k keep-alive requests, " + sv.label, false, fmt2, false})
	}
	if cliffMax > 0 {
		rows = append(rows, rowDef{"cliff", fmt.Sprintf("cpu_per_gb@%d", cliffMax),
			fmt.Sprintf("proxy CPU s per GB, 1 MiB responses as nobody, %d conns", cliffMax), false, fmt2, false})
	}
	rows = append(rows, []rowDef{
		{"keepalive", "rps", "keep-alive requests, 64 conns: req/s", true, fmtRate, false},
		{"keepalive", "p50_ms", "keep-alive p50 (ms)", false, fmtMs, false},
		{"keepalive", "p99_ms", "keep-alive p99 (ms)", false, fmtMs, false},
		{"close", "rps", "new connection per request, 64 at once: req/s", true, fmtRate, false},
		{"close", "p99_ms", "new connection p99 (ms)", false, fmtMs, false},
		{"bulk", "mbps", "1 MiB responses, 8 conns: MB/s", true, fmt0, false},
		{"iperf", "mbps", "iperf3 stream: MB/s", true, fmt0, false},
		{"sni", "conns_per_s", "TLS connections routed by SNI: per s", true, fmt0, false},
		{"udp-queries", "qps", "UDP queries answered: per s", true, fmtRate, false},
		{"udp-stream", "mbps", "steady iperf3 -u stream received: MB/s", true, fmt1, false},
		{"udp-stream", "loss_pct", "steady iperf3 -u stream: datagrams lost (%)", false, fmt2, false},
	}...)
	for _, sv := range serviceRows() {
		rows = append(rows, rowDef{sv.scenario, "rps", "keep-alive req/s, " + sv.label, true, fmtRate, false})
	}
	if cliffMax > 0 {
		rows = append(rows, rowDef{"cliff", fmt.Sprintf("mbps@%d", cliffMax),
			fmt.Sprintf("1 MiB responses as nobody, %d conns: MB/s", cliffMax), true, fmt0, false})
	}
	rows = append(rows, []rowDef{
		{"idle", "rss_kb_per_conn", "RSS per idle connection, 3,000 held (KB)", false, fmt1, false},
		{"idle", "fds_per_conn", "fds per idle connection", false, fmt2, false},
		{"idle", "slab_kb_per_conn", "kernel slab per idle connection (KB, machine-wide)", false, fmt1, false},
		{"idle", "max_conns", "idle connections held within the fd limit", true, fmt0, false},
		{"idle", "max_rss_kb_per_conn", "RSS per idle connection at that count (KB)", false, fmt1, false},
		{"strace", "ka_syscalls_per_req", "proxy syscalls per keep-alive request (strace)", false, fmt2, false},
		{"strace", "close_syscalls_per_conn", "proxy syscalls per new connection (strace)", false, fmt2, false},
	}...)
	for _, sv := range serviceRows() {
		rows = append(rows,
			rowDef{sv.scenario, "threads", "OS threads (all processes), " + sv.label, false, fmt0, false},
			rowDef{sv.scenario, "rss_mb", "RSS (MB, all processes), " + sv.label, false, fmt1, false})
	}
	return append(rows, []rowDef{
		{"keepalive", "backend_cpu_per_100k", "backend (whoami) CPU s per 100k keep-alive requests, for reference", false, fmt2, true},
		{"bulk", "all_cpu_per_gb", "CPU s per GB of every process of the run (wrk, backend, proxy), 1 MiB responses, for reference", false, fmt2, true},
		{"iperf", "all_cpu_per_gb", "CPU s per GB of every process of the run (both iperf3, proxy), iperf3 stream, for reference", false, fmt2, true},
	}...)
}

// serviceRows are the service-count scenarios, each with the words its
// rows end with.
func serviceRows() []struct{ scenario, label string } {
	return []struct{ scenario, label string }{
		{"services1", "200 conns over 1 service"},
		{"services20", "200 conns over 20 services"},
		{"services200", "200 conns over 200 services"},
		{"range200", "200 conns over 1 service on a 200-port range"},
	}
}

func fmtRate(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.1fk", v/1000)
	}
	return fmt.Sprintf("%.0f", v)
}
func fmtMs(v float64) string { return fmt.Sprintf("%.2f", v) }
func fmt0(v float64) string  { return fmt.Sprintf("%.0f", v) }
func fmt1(v float64) string  { return fmt.Sprintf("%.1f", v) }
func fmt2(v float64) string  { return fmt.Sprintf("%.2f", v) }

// cell is "median (min–max)" or "–" when nothing was measured.
func cell(s spread, f func(float64) string) string {
	switch {
	case s.N == 0:
		return "–"
	case s.N == 1 || f(s.Min) == f(s.Max):
		return f(s.Median)
	}
	return fmt.Sprintf("%s (%s–%s)", f(s.Median), f(s.Min), f(s.Max))
}

// writeResults writes results.json, results.md and results.svg into dir.
func writeResults(dir string, res *results) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("results dir: %w", err)
	}
	raw, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	files := map[string][]byte{
		"results.json": raw,
		"results.md":   []byte(markdown(res)),
		"results.svg":  []byte(chartSVG(res)),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}

// rerender rewrites the Markdown and the chart from a saved results.json,
// after a change to the report code, without measuring again.
func rerender(jsonPath string) error {
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		return fmt.Errorf("read results: %w", err)
	}
	var res results
	if err := json.Unmarshal(b, &res); err != nil {
		return fmt.Errorf("decode %s: %w", jsonPath, err)
	}
	dir := filepath.Dir(jsonPath)
	for name, text := range map[string]string{"results.md": markdown(&res), "results.svg": chartSVG(&res)} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}

func (res *results) labels() map[string]string {
	m := make(map[string]string)
	for _, t := range res.Targets {
		m[t.Name] = t.Label
	}
	return m
}

// columns are the targets that ran (unavailable ones are listed apart).
func (res *results) columns() []targetInfo {
	var out []targetInfo
	for _, t := range res.Targets {
		if t.Unavailable == "" {
			out = append(out, t)
		}
	}
	return out
}

// rows are the table rows of the scenarios that ran.
func (res *results) rows() []rowDef {
	var out []rowDef
	for _, r := range mainRows(res.cliffMax()) {
		if ranScenario(res, r.Scenario) {
			out = append(out, r)
		}
	}
	return out
}

func (res *results) cliffMax() int {
	if len(res.Options.CliffConns) == 0 {
		return 0
	}
	return res.Options.CliffConns[len(res.Options.CliffConns)-1]
}

func markdown(res *results) string {
	var b strings.Builder
	cols := res.columns()
	fmt.Fprintf(&b, "# tierlb benchmark\n\n")
	once := ""
	if len(res.Options.Once) > 0 && res.Options.Rounds > 1 {
		once = fmt.Sprintf(" (%s: first round only)", strings.Join(res.Options.Once, ", "))
	}
	fmt.Fprintf(&b, "%s, `%s`: medians of %d interleaved rounds%s, %s per load run; spread is min–max.\n\n",
		res.Date.UTC().Format("2006-01-02 15:04 MST"), res.Command, res.Options.Rounds, once, res.Options.Duration)
	writeMachine(&b, res)

	writeBestPeer(&b, res)
	writeGoals(&b, res)
	writeFloor(&b, res)
	writeSmallFloor(&b, res)
	writeServiceCounts(&b, res, cols)

	rows := res.rows()
	b.WriteString("\n## Medians of every column\n\n")
	header(&b, "row", cols, func(t targetInfo) string { return t.Label })
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s |", r.Label)
		for _, t := range cols {
			fmt.Fprintf(&b, " %s |", cell(stat(res.Runs, r.Scenario, t.Name, r.Metric), r.Format))
		}
		b.WriteString("\n")
	}
	for _, ref := range []struct{ family, title string }{
		{"direct", "direct"},
		{"haproxy", "the best HAProxy setting of each row"},
	} {
		if !slices.ContainsFunc(cols, func(t targetInfo) bool { return t.family() == ref.family }) {
			continue // e.g. a before/after run without the direct column
		}
		fmt.Fprintf(&b, "\n## Ratios against %s (target ÷ reference; the row says whether higher or lower is better)\n\n", ref.title)
		header(&b, "row", cols, func(t targetInfo) string { return t.Label })
		for _, r := range rows {
			refS := bestOf(res, r, ref.family).s
			if refS.N == 0 || refS.Median == 0 {
				continue // e.g. proxy CPU has no direct counterpart
			}
			fmt.Fprintf(&b, "| %s (%s) |", r.Label, better(r.Higher))
			for _, t := range cols {
				s := stat(res.Runs, r.Scenario, t.Name, r.Metric)
				if s.N == 0 {
					b.WriteString(" – |")
					continue
				}
				fmt.Fprintf(&b, " %.2f× |", s.Median/refS.Median)
			}
			b.WriteString("\n")
		}
	}
	b.WriteString("\n![advantage over the best HAProxy setting per row](results.svg)\n\n")
	b.WriteString("The chart shows each column's advantage over the best HAProxy setting of each row: HAProxy ÷ target for rows where lower is better, target ÷ HAProxy otherwise, so a bar past 1.0 is better than HAProxy at its best.\n")
	writeCliff(&b, res, cols)
	writeStrace(&b, res, cols)
	writeNotes(&b, res)
	writeMethod(&b, res)
	return b.String()
}

func better(higher bool) string {
	if higher {
		return "higher is better"
	}
	return "lower is better"
}

func header(b *strings.Builder, first string, cols []targetInfo, label func(targetInfo) string) {
	fmt.Fprintf(b, "| %s |", first)
	for _, t := range cols {
		fmt.Fprintf(b, " %s |", label(t))
	}
	b.WriteString("\n|---|")
	for range cols {
		b.WriteString("---|")
	}
	b.WriteString("\n")
}
