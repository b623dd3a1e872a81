package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// The secondary sections of results.md: machine, pipe budget, syscalls,
// notes and method.

func writeMachine(b *strings.Builder, res *results) {
	m := res.Machine
	fmt.Fprintf(b, "- machine: %d CPUs (%s), kernel %s, %d MiB RAM, RLIMIT_NOFILE %d, fs.pipe-user-pages-soft %s, fs.pipe-max-size %s\n",
		m.NProc, m.CPUModel, m.Kernel, m.MemTotalKB/1024, m.NoFile, m.PipeSoft, m.PipeMax)
	names := make([]string, 0, len(res.Versions))
	for k := range res.Versions {
		names = append(names, k)
	}
	sort.Strings(names)
	b.WriteString("- versions:")
	for i, k := range names {
		sep := ";"
		if i == len(names)-1 {
			sep = ""
		}
		fmt.Fprintf(b, " %s: `%s`%s", k, res.Versions[k], sep)
	}
	b.WriteString("\n")
	keys := make([]string, 0, len(res.Settings))
	for k := range res.Settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b.WriteString("- settings:")
	for _, k := range keys {
		fmt.Fprintf(b, " %s = %s;", k, res.Settings[k])
	}
	b.WriteString("\n")
	var loads []float64
	for _, r := range res.Runs {
		if r.Load1 >= 0 {
			loads = append(loads, r.Load1)
		}
	}
	l := summarize(loads)
	fmt.Fprintf(b, "- how busy the shared machine was: 1-minute load average %.2f before the first run, median %.2f (min %.2f, max %.2f) at the start of each run on %d CPUs (the bench's own wrk, proxy and backend account for about 3 of it)",
		res.LoadBefore, l.Median, l.Min, l.Max, res.Machine.NProc)
	var others []float64
	for _, r := range res.Runs {
		if r.OthersCPU != nil {
			others = append(others, *r.OthersCPU*100)
		}
	}
	if o := summarize(others); o.N > 0 {
		fmt.Fprintf(b, "; processes other than the bench's used a median %.0f%% (min %.0f%%, max %.0f%%) of all CPU time during the runs (/proc/stat busy time minus the bench's and its children's)",
			o.Median, o.Min, o.Max)
	}
	b.WriteString(".\n")
	if res.Options.Note != "" {
		fmt.Fprintf(b, "- note: %s\n", res.Options.Note)
	}
	for _, t := range res.Targets {
		if t.Unavailable != "" {
			fmt.Fprintf(b, "- **%s not measured**: %s\n", t.Label, t.Unavailable)
		}
	}
}

func writeCliff(b *strings.Builder, res *results, cols []targetInfo) {
	if len(res.Options.CliffConns) == 0 || !ranScenario(res, "cliff") {
		return
	}
	b.WriteString("\n## Per-user pipe budget: 1 MiB responses with the proxy running as nobody\n\n")
	header(b, "connections", cols, func(t targetInfo) string { return t.Label })
	for _, n := range res.Options.CliffConns {
		for _, m := range []struct{ key, label string }{
			{"mbps", "MB/s"}, {"cpu_per_gb", "proxy CPU s per GB"}, {"pipes", "pipes held (peak)"}, {"errors", "errors"},
		} {
			fmt.Fprintf(b, "| %d: %s |", n, m.label)
			for _, t := range cols {
				fmt.Fprintf(b, " %s |", cell(stat(res.Runs, "cliff", t.Name, fmt.Sprintf("%s@%d", m.key, n)), fmt0or2(m.key)))
			}
			b.WriteString("\n")
		}
	}
	b.WriteString("\n")
	for _, t := range cols {
		if t.Name == "direct" {
			continue
		}
		fmt.Fprintf(b, "- %s: %s\n", t.Label, cliffVerdict(res, t.Name))
	}
}

func fmt0or2(key string) func(float64) string {
	if key == "cpu_per_gb" {
		return fmt2
	}
	return fmt0
}

// cliffVerdict names the first connection count where transfers failed or
// got clearly worse than at the smallest count (CPU per GB up by half, or
// MB/s down by a third).
func cliffVerdict(res *results, target string) string {
	counts := res.Options.CliffConns
	base := func(m string) float64 {
		return stat(res.Runs, "cliff", target, fmt.Sprintf("%s@%d", m, counts[0])).Median
	}
	cpu0, mb0 := base("cpu_per_gb"), base("mbps")
	for _, n := range counts {
		at := func(m string) spread { return stat(res.Runs, "cliff", target, fmt.Sprintf("%s@%d", m, n)) }
		if at("mbps").N == 0 {
			return fmt.Sprintf("no result at %d connections", n)
		}
		switch {
		case at("errors").Median > 0:
			return fmt.Sprintf("transfers fail from %d connections on", n)
		case cpu0 > 0 && at("cpu_per_gb").Median > 1.5*cpu0:
			return fmt.Sprintf("CPU per GB up %.1f× at %d connections", at("cpu_per_gb").Median/cpu0, n)
		case mb0 > 0 && at("mbps").Median < mb0/1.5:
			return fmt.Sprintf("MB/s down to %.2f× at %d connections", at("mbps").Median/mb0, n)
		}
	}
	return fmt.Sprintf("no cliff up to %d connections", counts[len(counts)-1])
}

func writeStrace(b *strings.Builder, res *results, cols []targetInfo) {
	if !ranScenario(res, "strace") {
		return
	}
	b.WriteString("\n## Syscalls (strace -f -c on the proxy during short runs)\n\n")
	var proxies []targetInfo
	for _, t := range cols {
		if t.Name != "direct" {
			proxies = append(proxies, t)
		}
	}
	header(b, "per unit", proxies, func(t targetInfo) string { return t.Label })
	for _, m := range []struct{ key, label string }{
		{"ka_syscalls_per_req", "all syscalls per small request"},
		{"ka_splice_per_req", "splice per small request"},
		{"ka_splice_eagain_per_req", "splice returning EAGAIN per small request"},
		{"ka_read_per_req", "read/recv per small request"},
		{"ka_write_per_req", "write/send per small request"},
		{"ka_epoll_per_req", "epoll_wait per small request"},
		{"ka_uring_per_req", "io_uring_enter per small request (a batch of reads or of sends)"},
		{"close_syscalls_per_conn", "all syscalls per new connection (Connection: close)"},
		{"bulk_splice_per_mb", "splice per MB of 1 MiB responses"},
		{"bulk_readwrite_per_mb", "read/write per MB of 1 MiB responses"},
		{"zero_copy_ok", "zero-copy path intact (1 = every round)"},
	} {
		fmt.Fprintf(b, "| %s |", m.label)
		for _, t := range proxies {
			fmt.Fprintf(b, " %s |", cell(stat(res.Runs, "strace", t.Name, m.key), fmt2))
		}
		b.WriteString("\n")
	}
	var failures []string
	for _, r := range res.Runs {
		for _, n := range r.Notes {
			if r.Scenario == "strace" && strings.HasPrefix(n, "FAILURE") {
				failures = append(failures, fmt.Sprintf("- **%s**, round %d: %s", res.labels()[r.Target], r.Round, n))
			}
		}
	}
	if len(failures) == 0 {
		b.WriteString("\nNo zero-copy failures: every target that should splice did, and `zero_copy: off` did not.\n")
		return
	}
	b.WriteString("\n" + strings.Join(failures, "\n") + "\n")
}

func writeNotes(b *strings.Builder, res *results) {
	var lines []string
	for _, r := range res.Runs {
		label := res.labels()[r.Target]
		if r.Err != "" {
			lines = append(lines, fmt.Sprintf("- round %d, %s, %s: **error**: %s", r.Round, r.Scenario, label, r.Err))
		}
		for _, n := range r.Notes {
			if r.Scenario != "strace" || !strings.HasPrefix(n, "FAILURE") {
				lines = append(lines, fmt.Sprintf("- round %d, %s, %s: %s", r.Round, r.Scenario, label, n))
			}
		}
	}
	if len(lines) == 0 {
		return
	}
	b.WriteString("\n## Errors and notes from the runs\n\n" + strings.Join(lines, "\n") + "\n")
}

func writeMethod(b *strings.Builder, res *results) {
	b.WriteString("\n## How each scenario measures\n\n")
	for _, s := range res.Scenarios {
		fmt.Fprintf(b, "- **%s**: %s.\n", s.Name, s.Desc)
	}
	b.WriteString(`
Rounds are interleaved: within a round each scenario runs on every target back to back, each round starting one
target further on than the last (so none always follows the same neighbour), and each run starts its
proxy fresh (new process, new config in a temp dir) against the same whoami backend on 127.0.0.1. Proxy CPU is
the utime+stime delta of /proc/PID/stat summed over the proxy's processes (nginx's workers included) around the
load run, in seconds (USER_HZ = 100); per 100k requests it divides by wrk's request count, per GB by bytes read
(wrk) or received (iperf3 end.sum_received). RSS is VmRSS from /proc/PID/status summed over the processes, fds
count /proc/PID/fd, slab is the Slab line of /proc/meminfo (machine-wide, so it includes the client and backend
sockets and anything else the shared machine did meanwhile); each is the growth after the connections were
opened, over the connection count. Idle connections are opened by the bench itself, each completing one request
so both legs exist, and are asked once more before they are counted as held. MB means 10^6 bytes.
`)
}

func ranScenario(res *results, name string) bool {
	return slices.ContainsFunc(res.Runs, func(r runRecord) bool { return r.Scenario == name })
}
