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
	start        func(ctx context.Context, e *env, dir string, ports frontPorts, cred *syscall.Credential) ([]*proc, error)
}

// frontPorts are the proxy's listeners: HTTP (to whoami), iperf3, and
// tierlb's admin API (/metrics), which the others lack.
type frontPorts struct{ HTTP, Iperf, Admin int }

// running is a started target.
type running struct {
	t         *target
	httpAddr  string
	iperfAddr string
	procs     []*proc
	e         *env
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

// startTarget starts t (nothing for direct) and waits until it listens.
func startTarget(ctx context.Context, e *env, t *target, cred *syscall.Credential) (*running, error) {
	r := &running{t: t, e: e}
	if !t.Proxy {
		r.httpAddr = e.whoamiAddr
		r.iperfAddr = "127.0.0.1:" + strconv.Itoa(e.iperfPort)
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
	var ports frontPorts
	for _, p := range []*int{&ports.HTTP, &ports.Iperf, &ports.Admin} {
		var err error
		if *p, err = freePort(); err != nil {
			return nil, err
		}
	}
	ps, err := t.start(ctx, e, dir, ports, cred)
	r.procs = ps
	if err != nil {
		r.stop()
		return nil, fmt.Errorf("start %s: %w", t.Name, err)
	}
	if err := waitListening(ctx, ps[0], []int{ports.HTTP, ports.Iperf}, 10*time.Second); err != nil {
		r.stop()
		return nil, fmt.Errorf("start %s: %w", t.Name, err)
	}
	r.httpAddr = "127.0.0.1:" + strconv.Itoa(ports.HTTP)
	r.iperfAddr = "127.0.0.1:" + strconv.Itoa(ports.Iperf)
	return r, nil
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
		out = append(out, &target{Name: fmt.Sprintf("haproxy-nbthread%d", n), Family: "haproxy", Threads: n,
			Setting: fmt.Sprintf("nbthread %d", n), Label: fmt.Sprintf("HAProxy nbthread %d", n), Proxy: true, ExpectSplice: true,
			start: func(ctx context.Context, e *env, dir string, p frontPorts, cred *syscall.Credential) ([]*proc, error) {
				return startHAProxy(e, n, dir, p, cred)
			}})
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
func selectTargets(all []*target, sel []string) []*target {
	var out []*target
	for _, t := range all {
		fam := t.Family
		if fam == "tierlb-base" {
			fam = "tierlb"
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
