package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// The floor for small requests. Issue 18 asks tierlb to spend at most 0.85×
// HAProxy's CPU per small keep-alive request. Both spend most of it in the
// kernel, on the same four system calls per request (a receive and a send
// on each hop), so how low can a proxy go? Two columns answer, both
// bench/relay/small.c on one thread, with nothing but those calls: no
// runtime, no timers, no counters, no logging.
//
//   - epoll relay: edge-triggered epoll_wait, then recv and send per ready
//     socket, the model HAProxy, nginx and tierlb share (each socket registered
//     once, never modified). Its CPU per request
//     is the floor of that model: what a proxy spends above it is its own.
//   - io_uring relay: a receive queued on every socket, a send queued when
//     one completes, all submitted in the io_uring_enter that waits for the
//     next completions. The same work without a system call per receive and
//     per send: how far below the epoll model's floor the kernel lets a
//     proxy go.
//
// Their CPU is read as every proxy's is (utime+stime of the process), so
// they are charged for the same kernel work wherever the kernel puts it.

// smallScenarios are the scenarios the small-request relays run: small
// messages on keep-alive and new connections, and over many ports (a
// LISTEN=BACKEND pair per service; a range is not what they are for).
var smallScenarios = []string{"keepalive", "close", "services1", "services20", "services200"}

// smallTargets are the small-request relays among ts.
func smallTargets(ts []*target) []*target {
	var out []*target
	for _, name := range []string{"epoll-relay", "uring-relay"} {
		if t := findTarget(ts, name); t != nil {
			out = append(out, t)
		}
	}
	return out
}

// buildSmall compiles bench/relay/small.c with the system's C compiler. It
// needs only the kernel's headers (linux-libc-dev), not liburing.
func buildSmall(ctx context.Context, root, out string) error {
	cc, err := exec.LookPath("cc")
	if err != nil {
		return fmt.Errorf("no C compiler (cc) for bench/relay/small.c; install with: apt-get install -y gcc: %w", err)
	}
	cmd := exec.CommandContext(ctx, cc, "-O2", "-o", out, filepath.Join(root, "bench", "relay", "small.c"))
	cmd.Env = os.Environ()
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("cc bench/relay/small.c: %w: %s", err, strings.TrimSpace(string(b)))
	}
	return nil
}

// probeUring asks the built relay whether io_uring runs here: ENOSYS, EPERM
// under a seccomp profile or kernel.io_uring_disabled, or an old kernel
// come back as errSkipped with the relay's reason.
func probeUring(ctx context.Context, bin string) error {
	out, err := exec.CommandContext(ctx, bin, "probe").CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &exit) && exit.ExitCode() == 3:
		return fmt.Errorf("io_uring relay: %s: %w", strings.TrimSpace(string(out)), errSkipped)
	}
	return fmt.Errorf("io_uring relay: probe: %w: %s", err, strings.TrimSpace(string(out)))
}

// smallArgs are the relay's LISTEN=BACKEND pairs for p: the HTTP and iperf3
// ports (the bench waits for both), or one pair per service port.
func smallArgs(e *env, p frontPorts) ([]string, error) {
	_, http, ok := strings.Cut(e.whoamiAddr, ":")
	if !ok {
		return nil, fmt.Errorf("backend address %q has no port", e.whoamiAddr)
	}
	switch p.Kind {
	case frontTCP:
		return []string{fmt.Sprintf("%d=%s", p.HTTP, http), fmt.Sprintf("%d=%d", p.Iperf, e.iperfPort)}, nil
	case frontServices:
		var out []string
		for _, port := range p.Services {
			out = append(out, strconv.Itoa(port)+"="+http)
		}
		return out, nil
	}
	return nil, fmt.Errorf("only plain TCP and one port per service: %w", errSkipped)
}

// startSmall runs bench/relay/small.c in mode (epoll or uring) in front of
// the HTTP backend.
func startSmall(mode string) func(context.Context, *env, string, frontPorts, *syscall.Credential) ([]*proc, error) {
	return func(ctx context.Context, e *env, _ string, p frontPorts, cred *syscall.Credential) ([]*proc, error) {
		if mode == "uring" {
			if err := probeUring(ctx, e.smallBin); err != nil {
				return nil, err
			}
		}
		args, err := smallArgs(e, p)
		if err != nil {
			return nil, fmt.Errorf("%s relay: %w", mode, err)
		}
		pr, err := e.procs.start(mode+"-relay", append([]string{e.smallBin, mode}, args...), nil, cred)
		if err != nil {
			return nil, err
		}
		return []*proc{pr}, nil
	}
}
