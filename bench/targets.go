package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"
)

// target is one column of the comparison: a way for clients to reach the
// backends, either directly or through a proxy started fresh for each run (so
// one run's heap and caches do not colour the next one's RSS and CPU).
//
// A proxy appears once per setting of its thread count (HAProxy nbthread,
// nginx worker_processes, tierlb event loops): which count costs least per
// request depends on what shares the cores, so each proxy is compared at
// its best setting for each row, not at one chosen in advance.
type target struct {
	Name   string // key in results.json
	Label  string // column header
	Family string // the proxy, whatever the setting: direct, tierlb, haproxy, nginx, ...
	// Threads is the setting: nbthread, worker_processes or event loops;
	// 0 for targets without one (direct) and for tierlb at its default.
	Threads int
	// Setting names Threads as the proxy's own config does ("nbthread 2",
	// "1 loop (--loops 1)"); Label is the proxy's name and the setting.
	Setting string
	// Default is tierlb run with no loop setting at all, as users run it.
	Default bool
	Proxy   bool
	// ExpectSplice: bulk traffic through this target must use splice(2);
	// strace seeing none is a FAILURE. For tierlb with zero_copy off, seeing
	// any is one.
	ExpectSplice bool
	ForbidSplice bool
	Unavailable  string // why it cannot run here (missing tool, build error)
	// Scenarios limits the target to these scenarios; nil is every one.
	Scenarios []string
	start     func(ctx context.Context, e *env, dir string, ports frontPorts, cred *syscall.Credential) ([]*proc, error)
}

// frontKind is what a run's proxy listens for; each scenario drives one.
// A proxy is started with only the listeners its scenario uses: a tierlb
// service is a set of event loops of its own, so idle extra services would
// change what the other rows measure.
type frontKind int

const (
	frontTCP        frontKind = iota // HTTP to whoami, and an iperf3 port
	frontSNI                         // one TLS port routing two server names to two TLS backends
	frontUDPQueries                  // DNS-style queries to whoami --dns, a session per query
	frontUDPStream                   // iperf3 -u: TCP control and UDP data on one port
	frontServices                    // one service per port, all to whoami
	frontRange                       // one service on a range of consecutive ports, to whoami
)

// frontPorts are the proxy's listeners, by kind: HTTP and Iperf (TCP;
// Iperf also UDP for frontUDPStream), TLS, DNS (UDP), Services (one port
// per service, or every port of the range in order), and tierlb's admin
// API (/metrics), which the others lack.
type frontPorts struct {
	Kind                         frontKind
	HTTP, Iperf, Admin, TLS, DNS int
	Services                     []int
}

// running is a started target.
type running struct {
	t         *target
	httpAddr  string
	iperfAddr string
	// tlsAddr is the SNI front; "" for direct, which dials each backend.
	tlsAddr  string
	dnsAddr  string
	svcAddrs []string // one per service (or per port of a range)
	procs    []*proc
	e        *env
}

// pids returns the proxy's processes, workers included; nil for direct.
func (r *running) pids() []int {
	var out []int
	for _, p := range r.procs {
		out = append(out, descendants(p.pid())...)
	}
	return out
}

func (r *running) cpuTicks() uint64 { return cpuTicks(r.pids()) }

func (r *running) stop() {
	for _, p := range r.procs {
		r.e.procs.stop(p, 3*time.Second)
	}
}

// alive reports a proxy that died during a run, with the end of its log.
func (r *running) alive() error {
	for _, p := range r.procs {
		if p.exited() {
			return fmt.Errorf("%s exited during the run (%v): %s", p.name, p.waitErr, p.logTail())
		}
	}
	return nil
}

// startTarget starts t (nothing for direct) with the listeners of kind
// (services ports for frontServices and frontRange) and waits until it
// listens.
func startTarget(ctx context.Context, e *env, t *target, kind frontKind, services int, cred *syscall.Credential) (*running, error) {
	r := &running{t: t, e: e}
	if !t.Proxy {
		r.httpAddr = e.whoamiAddr
		r.iperfAddr = "127.0.0.1:" + strconv.Itoa(e.iperfPort)
		r.dnsAddr = e.dnsAddr
		for range services {
			r.svcAddrs = append(r.svcAddrs, e.whoamiAddr)
		}
		return r, nil
	}
	e.runSeq++
	dir := filepath.Join(e.tmp, fmt.Sprintf("run-%03d-%s", e.runSeq, t.Name))
	if err := os.Mkdir(dir, 0o777); err != nil {
		return nil, fmt.Errorf("start %s: %w", t.Name, err)
	}
	// World-writable so a proxy started as nobody can write its pid and logs.
	if err := os.Chmod(dir, 0o777); err != nil {
		return nil, fmt.Errorf("start %s: %w", t.Name, err)
	}
	ports, err := allocPorts(kind, services)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", t.Name, err)
	}
	ps, err := t.start(ctx, e, dir, ports, cred)
	r.procs = ps
	if err != nil {
		r.stop()
		return nil, fmt.Errorf("start %s: %w", t.Name, err)
	}
	tcp, udp := ports.listening()
	if err := waitListening(ctx, ps[0], tcp, 10*time.Second); err != nil {
		r.stop()
		return nil, fmt.Errorf("start %s: %w", t.Name, err)
	}
	if err := waitBoundUDP(ctx, ps[0], udp, 10*time.Second); err != nil {
		r.stop()
		return nil, fmt.Errorf("start %s: %w", t.Name, err)
	}
	addr := func(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }
	r.httpAddr, r.iperfAddr, r.tlsAddr, r.dnsAddr = addr(ports.HTTP), addr(ports.Iperf), addr(ports.TLS), addr(ports.DNS)
	for _, p := range ports.Services {
		r.svcAddrs = append(r.svcAddrs, addr(p))
	}
	return r, nil
}

// allocPorts finds free loopback ports for kind's listeners.
func allocPorts(kind frontKind, services int) (frontPorts, error) {
	p := frontPorts{Kind: kind}
	var err error
	if p.Admin, err = freePort(); err != nil {
		return p, err
	}
	switch kind {
	case frontTCP:
		if p.HTTP, err = freePort(); err == nil {
			p.Iperf, err = freePort()
		}
	case frontSNI:
		p.TLS, err = freePort()
	case frontUDPQueries:
		p.DNS, err = freePortTCPUDP()
	case frontUDPStream:
		p.Iperf, err = freePortTCPUDP()
	case frontServices, frontRange:
		// A block below the ephemeral ports, all free at once: ports picked
		// one by one from the kernel repeat, and clients' own ports land
		// among them.
		var lo int
		if lo, err = freePortRange(services); err == nil {
			for i := range services {
				p.Services = append(p.Services, lo+i)
			}
		}
	}
	return p, err
}

// listening are the TCP ports a started proxy must listen on and the UDP
// ports it must have bound.
func (p frontPorts) listening() (tcp, udp []int) {
	switch p.Kind {
	case frontTCP:
		return []int{p.HTTP, p.Iperf}, nil
	case frontSNI:
		return []int{p.TLS}, nil
	case frontUDPQueries:
		return nil, []int{p.DNS}
	case frontUDPStream:
		return []int{p.Iperf}, []int{p.Iperf}
	}
	return p.Services, nil
}

// rangeSpec is the range as HAProxy and tierlb write it: "LO-HI".
func (p frontPorts) rangeSpec() string {
	if len(p.Services) == 0 {
		return ""
	}
	return fmt.Sprintf("%d-%d", p.Services[0], p.Services[len(p.Services)-1])
}

// allTargets lists the columns in table order: each proxy once per thread
// count in threads (tierlb also at its default, defaultLoops event loops,
// with no setting given); with a baseline, tierlb built from that revision
// the same way. Availability and tierlb's labels are filled in by setup,
// which knows how the built binaries take a loop count.
func allTargets(threads []int, defaultLoops int, baseline string) []*target {
	out := []*target{{Name: "direct", Label: "direct", Family: "direct"}}
	out = append(out, tierlbTargets("tierlb", defaultLoops, threads)...)
	if baseline != "" {
		out = append(out, tierlbTargets("tierlb-base", defaultLoops, threads)...)
	}
	out = append(out, &target{Name: "tierlb-copy", Family: "tierlb-copy", Default: true, Proxy: true, ForbidSplice: true,
		start: func(ctx context.Context, e *env, dir string, p frontPorts, cred *syscall.Credential) ([]*proc, error) {
			return startTierlb(e, dir, p, tierlbRun{build: e.tierlb, name: "tierlb-copy", copyOnly: true}, cred)
		}})
	for _, n := range threads {
		for _, m := range spliceModes() {
			out = append(out, &target{Name: fmt.Sprintf("haproxy-nbthread%d%s", n, m.suffix), Family: "haproxy", Threads: n,
				Setting: fmt.Sprintf("nbthread %d, %s", n, m.name), Label: fmt.Sprintf("HAProxy nbthread %d, %s", n, m.name),
				Proxy: true, ExpectSplice: m.mode == spliceBoth, ForbidSplice: m.mode == spliceOff,
				start: func(ctx context.Context, e *env, dir string, p frontPorts, cred *syscall.Credential) ([]*proc, error) {
					return startHAProxy(e, haproxyRun{threads: n, splice: m.mode}, dir, p, cred)
				}})
		}
	}
	for _, n := range threads {
		out = append(out, &target{Name: fmt.Sprintf("nginx-workers%d", n), Family: "nginx", Threads: n,
			Setting: plural(n, "worker"), Label: "nginx " + plural(n, "worker"), Proxy: true,
			start: func(ctx context.Context, e *env, dir string, p frontPorts, cred *syscall.Credential) ([]*proc, error) {
				return startNginx(e, n, dir, p, cred)
			}})
	}
	out = append(out, &target{Name: "naive-go", Label: "naive Go io.Copy", Family: "naive-go", Proxy: true, ExpectSplice: true,
		start: startNaive})
	out = append(out, &target{Name: "splice-relay", Label: "splice relay (floor)", Family: "splice-relay", Proxy: true,
		ExpectSplice: true, Scenarios: relayScenarios, start: startRelay})
	out = append(out, &target{Name: "epoll-relay", Label: "epoll relay (floor)", Family: "epoll-relay", Proxy: true,
		Scenarios: smallScenarios, start: startSmall("epoll")})
	out = append(out, &target{Name: "uring-relay", Label: "io_uring relay", Family: "uring-relay", Proxy: true,
		Scenarios: smallScenarios, start: startSmall("uring")})
	return out
}

// tierlbTargets are tierlb at its default and at every other loop count in
// threads. The default is not run a second time as "N loops": it is the
// same process.
func tierlbTargets(family string, defaultLoops int, threads []int) []*target {
	build := func(e *env) *tierlbBuild {
		if family == "tierlb-base" {
			return e.base
		}
		return e.tierlb
	}
	out := []*target{{Name: family, Family: family, Default: true, Proxy: true, ExpectSplice: true,
		start: func(ctx context.Context, e *env, dir string, p frontPorts, cred *syscall.Credential) ([]*proc, error) {
			return startTierlb(e, dir, p, tierlbRun{build: build(e), name: family}, cred)
		}}}
	for _, n := range threads {
		if n == defaultLoops {
			continue
		}
		out = append(out, &target{Name: fmt.Sprintf("%s-loops%d", family, n), Family: family, Threads: n,
			Proxy: true, ExpectSplice: true,
			start: func(ctx context.Context, e *env, dir string, p frontPorts, cred *syscall.Credential) ([]*proc, error) {
				return startTierlb(e, dir, p, tierlbRun{build: build(e), name: family, loops: n}, cred)
			}})
	}
	return out
}

// selectTargets keeps the targets named in sel, by name or by family
// ("haproxy" is every HAProxy setting); "all" keeps every one. The baseline
// build goes wherever tierlb goes: it exists only to be compared with it.
// The relays go wherever direct goes: direct is the ceiling, the relays
// the floors, and none is a peer.
func selectTargets(all []*target, sel []string) []*target {
	var out []*target
	for _, t := range all {
		fam := t.Family
		switch fam {
		case "tierlb-base":
			fam = "tierlb"
		case "splice-relay", "epoll-relay", "uring-relay":
			fam = "direct"
		}
		if slices.Contains(sel, "all") || slices.Contains(sel, t.Name) || slices.Contains(sel, fam) {
			out = append(out, t)
		}
	}
	return out
}

// findTarget returns the target named name from ts, or nil.
func findTarget(ts []*target, name string) *target {
	for _, t := range ts {
		if t.Name == name {
			return t
		}
	}
	return nil
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
