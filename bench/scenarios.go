package main

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// outcome is what one scenario measured on one target in one round.
type outcome struct {
	Metrics map[string]float64 `json:"metrics"`
	Notes   []string           `json:"notes,omitempty"`
}

func (o *outcome) set(k string, v float64) {
	if o.Metrics == nil {
		o.Metrics = make(map[string]float64)
	}
	o.Metrics[k] = v
}

func (o *outcome) note(format string, args ...any) {
	o.Notes = append(o.Notes, fmt.Sprintf(format, args...))
}

// minCPUSeconds is the least CPU time a per-unit figure is computed from.
// CPU is read in 10 ms ticks, so below 0.1 s one tick either way is 10% or
// more; and a run that small means the shared machine left the load
// generator next to no time (a 2 s bulk run once moved 6 MB and read 0
// ticks, "0.00 CPU s per GB"). Such a run gets a note instead. A slow but
// real iperf3 run on a busy machine (300 MB/s for 3 s) uses about 0.2 s.
const minCPUSeconds = 0.1

// setPerUnit records cpu seconds per units, times scale (1e5 for "per
// 100k"), when there is enough of both to mean something.
func (o *outcome) setPerUnit(key string, cpu, units, scale float64) {
	if units <= 0 {
		return
	}
	if cpu < minCPUSeconds {
		o.note("%s not recorded: %.2f CPU s measured, under the %.1f s a per-unit figure needs (the machine was too busy to drive the load)",
			key, cpu, minCPUSeconds)
		return
	}
	o.set(key, cpu/units*scale)
}

// scenario is one kind of load. Each run gets a freshly started target.
type scenario struct {
	Name string
	Desc string
	// ProxyOnly scenarios measure the proxy process and skip direct.
	ProxyOnly bool
	// AsNobody starts the proxy without root, so the kernel's per-user pipe
	// budget applies to it as in a normal deployment.
	AsNobody bool
	// Front is what the proxy listens for in this scenario, Services how
	// many service ports (frontServices) or ports of the range (frontRange).
	Front    frontKind
	Services int
	// Families are the proxies the scenario runs on (the baseline build goes
	// wherever tierlb goes); nil is every target.
	Families []string
	Run      func(ctx context.Context, e *env, r *running) (outcome, error)
}

// runsOn reports whether s runs on t.
func (s *scenario) runsOn(t *target) bool {
	if t.Unavailable != "" || (s.ProxyOnly && !t.Proxy) || (t.Scenarios != nil && !slices.Contains(t.Scenarios, s.Name)) {
		return false
	}
	fam := t.Family
	if fam == "tierlb-base" {
		fam = "tierlb"
	}
	return s.Families == nil || slices.Contains(s.Families, fam)
}

// Load shapes. 64 keep-alive connections is the reference setup;
// bulk uses fewer connections so that 1 MiB pipes (Go's size) stay well
// inside root's budget and the row measures copying, not the pipe cliff.
const (
	smallConns = 64
	// closeMaxRate bounds the new-connection loads (Connection: close) in
	// rate: new connections per second, above the most any proxy (10.0k)
	// or the direct connection (12.4k) reached on the 2-core machine the
	// figures come from, so it binds only on a faster one. The backend
	// closes first, so TIME_WAIT lands on the server's port of each leg,
	// not on the client's ephemeral ones.
	closeMaxRate = 15_000
	bulkConns    = 8
	bulkPath     = "/bytes/1048576"
)

func allScenarios() []*scenario {
	return []*scenario{
		{Name: "keepalive", Desc: "small requests (GET /, ~100 B answers) on 64 keep-alive connections: wrk --latency", Run: runKeepalive},
		{Name: "close", Desc: "a new connection per request (Connection: close), 64 concurrent: wrk --latency", Run: runClose},
		{Name: "bulk", Desc: "1 MiB responses on 8 keep-alive connections: wrk", Run: runBulk},
		{Name: "iperf", Desc: "one iperf3 TCP stream through the proxy to iperf3 -s", Run: runIperfScenario},
		{Name: "idle", Desc: "3,000 idle connections, then as many as the fd limit allows: proxy RSS, fds, kernel slab", ProxyOnly: true, Run: runIdle},
		{Name: "cliff", Desc: "1 MiB responses on many connections with the proxy running as nobody (per-user pipe budget)", AsNobody: true, Run: runCliff},
		{Name: "strace", Desc: "syscalls counted with strace -f -c during short keep-alive, new-connection and bulk runs", ProxyOnly: true, Run: runStrace},
		{Name: "sni", Desc: fmt.Sprintf("TLS connections routed by server name (tierlb sni, HAProxy req.ssl_sni, nginx ssl_preread) to two TLS backends: "+
			"each a new connection, a full TLS 1.3 handshake, a one-line answer and a close; %d clients, at most %d connections/s", sniConns, sniRate),
			ProxyOnly: true, Front: frontSNI, Families: []string{"tierlb", "haproxy", "nginx"}, Run: runSNI},
		{Name: "udp-queries", Desc: "DNS-style UDP queries, one in flight on each of many client sockets (--udp-clients), each query a session of its own (tierlb udp.responses: 1, nginx proxy_responses 1), to whoami --dns",
			ProxyOnly: true, Front: frontUDPQueries, Families: []string{"tierlb", "nginx"}, Run: runUDPQueries},
		{Name: "udp-stream", Desc: "one steady iperf3 -u stream at a fixed rate (--udp-rate of --udp-len byte datagrams) through the proxy to iperf3 -s",
			ProxyOnly: true, Front: frontUDPStream, Families: []string{"tierlb", "nginx"}, Run: runUDPStream},
		servicesScenario("services1", frontServices, 1),
		servicesScenario("services20", frontServices, 20),
		servicesScenario("services200", frontServices, 200),
		servicesScenario("range200", frontRange, 200),
	}
}

// servicesScenario spreads the same svcConns keep-alive connections over n
// services of one port each, or over one service's range of n ports.
func servicesScenario(name string, kind frontKind, n int) *scenario {
	desc := fmt.Sprintf("small keep-alive requests from %d wrk threads of one connection each, spread round robin over %s; threads, RSS and fds of all the proxy's processes halfway through the load",
		svcConns, plural(n, "service")+" of one port each")
	if kind == frontRange {
		desc = fmt.Sprintf("the same %d wrk connections over the %d ports of one service's range (tierlb listen: HOST:LO-HI, HAProxy bind HOST:LO-HI, nginx a listen line per port)",
			svcConns, n)
	}
	// The small-request relays take a port per service, not a range; their
	// target's Scenarios leaves range200 out.
	return &scenario{Name: name, Desc: desc, ProxyOnly: true, Front: kind, Services: n,
		Families: []string{"tierlb", "haproxy", "nginx", "epoll-relay", "uring-relay"}, Run: runServices}
}

// scenarioGroups are names for several scenarios at once, for --scenarios
// and --once.
var scenarioGroups = map[string][]string{
	"udp":      {"udp-queries", "udp-stream"},
	"services": {"services1", "services20", "services200", "range200"},
}

// expandScenarios replaces group names by their scenarios.
func expandScenarios(names []string) []string {
	var out []string
	for _, n := range names {
		if g, ok := scenarioGroups[n]; ok {
			out = append(out, g...)
			continue
		}
		out = append(out, n)
	}
	return out
}

// cpuSeconds converts clock ticks to seconds.
func cpuSeconds(ticks uint64) float64 { return float64(ticks) / clkTck }

// measuredWrk runs wrk and the proxy's CPU delta around it.
func measuredWrk(ctx context.Context, e *env, r *running, l wrkLoad) (wrkResult, float64, error) {
	res, cpu, _, err := measuredWrkBackend(ctx, e, r, l)
	return res, cpu, err
}

// measuredWrkBackend also returns the backend's CPU seconds.
func measuredWrkBackend(ctx context.Context, e *env, r *running, l wrkLoad) (res wrkResult, cpu, backend float64, err error) {
	if l.Threads == 0 {
		l.Threads = e.threads
	}
	backend0 := cpuTicks([]int{e.whoamiPID})
	before := r.cpuTicks()
	res, err = runWrk(ctx, e.tools.path("wrk"), l)
	cpu = cpuSeconds(r.cpuTicks() - before)
	backend = cpuSeconds(cpuTicks([]int{e.whoamiPID}) - backend0)
	if err == nil {
		err = r.alive()
	}
	return res, cpu, backend, err
}

// errorShare notes failed requests; a few under load are information, many
// mean the row is not comparable.
func errorShare(o *outcome, res wrkResult) {
	bad := res.SocketErrs + res.Non2xx3xx
	o.set("errors", float64(bad))
	if bad > 0 {
		o.note("%d socket errors or non-2xx answers in %d requests", bad, res.Requests)
	}
}

func runKeepalive(ctx context.Context, e *env, r *running) (outcome, error) {
	var o outcome
	res, cpu, backend, err := measuredWrkBackend(ctx, e, r, wrkLoad{URL: "http://" + r.httpAddr + "/", Conns: smallConns, Duration: e.opts.Duration})
	if err != nil {
		return o, err
	}
	o.set("rps", res.ReqPerSec)
	o.set("p50_ms", ms(res.LatencyP50))
	o.set("p99_ms", ms(res.LatencyP99))
	o.setPerUnit("backend_cpu_per_100k", backend, float64(res.Requests), 1e5)
	if r.t.Proxy {
		o.setPerUnit("cpu_per_100k", cpu, float64(res.Requests), 1e5)
	}
	errorShare(&o, res)
	return o, nil
}

func runClose(ctx context.Context, e *env, r *running) (outcome, error) {
	var o outcome
	res, cpu, err := measuredWrk(ctx, e, r, wrkLoad{URL: "http://" + r.httpAddr + "/", Conns: smallConns,
		Duration: e.opts.Duration, Headers: []string{"Connection: close"}, MaxRate: closeMaxRate})
	if err != nil {
		return o, err
	}
	o.set("rps", res.ReqPerSec)
	o.set("p99_ms", ms(res.LatencyP99))
	if r.t.Proxy {
		o.setPerUnit("cpu_per_100k", cpu, float64(res.Requests), 1e5)
	}
	errorShare(&o, res)
	return o, nil
}

func runBulk(ctx context.Context, e *env, r *running) (outcome, error) {
	var o outcome
	all := startAllCPU(e, r)
	res, cpu, err := measuredWrk(ctx, e, r, wrkLoad{URL: "http://" + r.httpAddr + bulkPath, Conns: bulkConns, Duration: e.opts.Duration})
	if err != nil {
		return o, err
	}
	if res.Seconds <= 0 || res.BytesRead <= 0 {
		return o, fmt.Errorf("bulk: wrk read nothing in %.1fs", res.Seconds)
	}
	o.set("mbps", res.BytesRead/res.Seconds/1e6)
	if r.t.Proxy {
		o.setPerUnit("cpu_per_gb", cpu, res.BytesRead, 1e9)
	}
	all.record(&o, res.BytesRead)
	errorShare(&o, res)
	return o, nil
}

func runIperfScenario(ctx context.Context, e *env, r *running) (outcome, error) {
	var o outcome
	all := startAllCPU(e, r)
	before := r.cpuTicks()
	res, err := runIperf(ctx, e, r.iperfAddr, e.opts.Duration, nil)
	cpu := cpuSeconds(r.cpuTicks() - before)
	if err == nil {
		err = r.alive()
	}
	if err != nil {
		return o, err
	}
	o.set("mbps", res.MBps())
	if r.t.Proxy {
		o.setPerUnit("cpu_per_gb", cpu, res.Bytes, 1e9)
	}
	all.record(&o, res.Bytes)
	return o, nil
}

// allCPU measures the CPU of every process of a run: the load generator
// and its server (reaped by the time record runs, so counted in the
// bench's children's time), the backend and the running proxy. Direct's
// figure is one hop with both its ends, a proxy's two hops, both ends and
// the proxy: the floor section of the results sets them side by side.
type allCPU struct {
	e      *env
	r      *running
	before uint64
	ok     bool
}

func startAllCPU(e *env, r *running) allCPU {
	own, ok := ownTicks(e)
	return allCPU{e: e, r: r, before: own + r.cpuTicks(), ok: ok}
}

// record sets all_cpu_per_gb for bytes moved since start. Call it after
// the load's processes are reaped and before the proxy is stopped.
func (a allCPU) record(o *outcome, bytes float64) {
	own, ok := ownTicks(a.e)
	after := own + a.r.cpuTicks()
	if !a.ok || !ok || after < a.before {
		return
	}
	o.setPerUnit("all_cpu_per_gb", cpuSeconds(after-a.before), bytes, 1e9)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
