package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// The floor for bulk transfer. Issue 18 asks how close tierlb's CPU per GB
// comes to what the kernel's splice costs. The bench answers with a column
// that is the least possible proxy: bench/relay, a thread per direction
// looping blocking splice(2) socket -> pipe -> socket (tierlb's 256 KiB
// pipe), no event loop, no runtime, no bookkeeping. Its CPU per GB is
// measured exactly as every proxy's is (utime+stime of its process), so it
// is charged for exactly what a proxy is charged for, wherever the kernel
// puts it: on loopback the receiving socket's softirq work runs in the
// sender's context, so the relay, like a proxy, pays for the TCP receive
// processing of the bytes it sends to the client and of the ACKs it sends
// to the backend, and the backend pays for delivering into the relay's
// socket. What a proxy spends above the relay is its own cost.
//
// The direct column cannot give the floor by itself: wrk and whoami copy
// every byte to and from user space, which a splicing proxy never does, and
// they parse and build HTTP. Machine-wide CPU (/proc/stat) would catch work
// that lands on ksoftirqd, but on a machine shared with other jobs it counts
// their work too. The bench records a second figure as a cross-check, CPU of
// every process of the run per GB (all_cpu_per_gb): direct's is one hop with
// both ends, a proxy's is two hops, both ends and the proxy; a proxy's
// excess over direct should match its own CPU per GB if the hop costs land
// where the paragraph above says (see floor.go).

// relayScenarios are the scenarios the relay column runs: the floor is for
// bulk transfer. A thread per direction would hold thousands of threads in
// the idle scenario, which is not what it is for.
var relayScenarios = []string{"bulk", "iperf"}

// buildRelay compiles bench/relay/relay.c with the system's C compiler.
func buildRelay(ctx context.Context, root, out string) error {
	cc, err := exec.LookPath("cc")
	if err != nil {
		return fmt.Errorf("no C compiler (cc) for bench/relay; install with: apt-get install -y gcc: %w", err)
	}
	cmd := exec.CommandContext(ctx, cc, "-O2", "-pthread", "-o", out, filepath.Join(root, "bench", "relay", "relay.c"))
	cmd.Env = os.Environ()
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("cc bench/relay/relay.c: %w: %s", err, strings.TrimSpace(string(b)))
	}
	return nil
}

// startRelay runs bench/relay in front of the HTTP and iperf3 backends.
func startRelay(_ context.Context, e *env, _ string, p frontPorts, cred *syscall.Credential) ([]*proc, error) {
	if p.Kind != frontTCP {
		return nil, fmt.Errorf("splice relay: only plain TCP: %w", errSkipped)
	}
	_, http, ok := strings.Cut(e.whoamiAddr, ":")
	if !ok {
		return nil, fmt.Errorf("splice relay: backend address %q has no port", e.whoamiAddr)
	}
	argv := []string{e.relayBin, fmt.Sprintf("%d=%s", p.HTTP, http), fmt.Sprintf("%d=%d", p.Iperf, e.iperfPort)}
	pr, err := e.procs.start("relay", argv, nil, cred)
	if err != nil {
		return nil, err
	}
	return []*proc{pr}, nil
}
