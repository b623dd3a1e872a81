package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// procThreads reads a process's thread count from /proc.
func procThreads(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads line in /proc status")
	return 0
}

// TestThreadsDoNotGrowWithServices: the process's threads are its loops
// and a few of Go's, whether it runs one service or a hundred; a reload
// that adds or removes services starts none.
func TestThreadsDoNotGrowWithServices(t *testing.T) {
	be := startBackend(t, "be")
	// Health none: a service takes traffic as soon as it listens.
	services := func(n int) string {
		var sb strings.Builder
		sb.WriteString("admin: {listen: '127.0.0.1:0'}\nshutdown: {drain_timeout: 10s}\nservices:\n")
		for i := range n {
			fmt.Fprintf(&sb, "  - {name: s%d, listen: '127.0.0.1:0', backends: {static: ['%s']}, health: {type: none}}\n", i, be.addr())
		}
		return sb.String()
	}
	file := writeFile(t, "tierlb.yaml", services(1))
	p := startBinary(t, "run", "--config", file, "--loops", "2")
	if got, err := greet(t, p.serviceAddr(t, "s0")); err != nil || got != "be" {
		t.Fatalf("s0: %q, %v", got, err)
	}
	pid := p.Cmd.Process.Pid
	one := procThreads(t, pid)

	reload := func(n int) {
		t.Helper()
		if err := os.WriteFile(file, []byte(services(n)), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	reload(100)
	last := p.serviceAddr(t, "s99")
	if got, err := greet(t, last); err != nil || got != "be" {
		t.Fatalf("s99: %q, %v", got, err)
	}
	hundred := procThreads(t, pid)
	t.Logf("threads: %d with 1 service, %d with 100 (2 loops)", one, hundred)
	// Go's runtime may start a thread or two for its own work; a thread
	// per loop and service would add 200.
	if hundred > one+8 {
		t.Errorf("threads grew from %d to %d with 99 services added", one, hundred)
	}

	reload(1)
	p.WaitLog(t, `msg="service drained" service=s99`)
	if got, err := greet(t, p.serviceAddr(t, "s0")); err != nil || got != "be" {
		t.Fatalf("s0 after removing 99: %q, %v", got, err)
	}
	if now := procThreads(t, pid); now > one+8 {
		t.Errorf("threads %d after removing 99 services, %d before adding them", now, one)
	}
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.Wait(t, 20*time.Second); code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
}
