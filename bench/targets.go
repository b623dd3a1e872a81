package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// target is one column of the comparison: a way for clients to reach the
// backends, either directly or through a proxy started fresh for each run (so
// one run's heap and caches do not colour the next one's RSS and CPU).
type target struct {
	Name  string // key in results.json
	Label string // column header
	Proxy bool
	// ExpectSplice: bulk traffic through this target must use splice(2);
	// strace seeing none is a FAILURE. For tierlb with zero_copy off, seeing
	// any is one.
	ExpectSplice bool
	ForbidSplice bool
	Unavailable  string // why it cannot run here (missing tool, build error)
	start        func(ctx context.Context, e *env, dir string, ports frontPorts, cred *syscall.Credential) ([]*proc, error)
}

// frontPorts are the proxy's two listeners: HTTP (to whoami) and iperf3.
type frontPorts struct{ HTTP, Iperf int }

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
	var err error
	if ports.HTTP, err = freePort(); err != nil {
		return nil, err
	}
	if ports.Iperf, err = freePort(); err != nil {
		return nil, err
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

// allTargets lists the columns in table order; availability is filled in by
// the tool and build checks.
func allTargets() []*target {
	return []*target{
		{Name: "direct", Label: "direct"},
		{Name: "tierlb", Label: "tierlb (splice)", Proxy: true, ExpectSplice: true,
			start: func(ctx context.Context, e *env, dir string, p frontPorts, cred *syscall.Credential) ([]*proc, error) {
				return startTierlb(e, dir, p, true, cred)
			}},
		{Name: "tierlb-copy", Label: "tierlb (zero_copy: off)", Proxy: true, ForbidSplice: true,
			start: func(ctx context.Context, e *env, dir string, p frontPorts, cred *syscall.Credential) ([]*proc, error) {
				return startTierlb(e, dir, p, false, cred)
			}},
		{Name: "haproxy", Label: "HAProxy (splice)", Proxy: true, ExpectSplice: true,
			start: startHAProxy},
		{Name: "nginx", Label: "nginx stream", Proxy: true,
			start: startNginx},
		{Name: "naive-go", Label: "naive Go io.Copy", Proxy: true, ExpectSplice: true,
			start: startNaive},
	}
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
