package main

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tierlb/tierlb/config"
	"github.com/tierlb/tierlb/health"
	"github.com/tierlb/tierlb/internal/testkit"
	"github.com/tierlb/tierlb/proxy"
)

// TestGoroutinesDoNotGrowWithServices: a running service holds no
// goroutine of its own, neither its accept path nor its health monitor,
// so a process with a hundred idle services runs as many goroutines as one
// with ten (a stack each made most of the RSS of hundreds of services);
// after the drain none is left.
func TestGoroutinesDoNotGrowWithServices(t *testing.T) {
	be := startBackend(t, "be")
	for _, typ := range []string{health.TypeNone, health.TypeTCP} {
		t.Run(typ, func(t *testing.T) {
			base := runtime.NumGoroutine()
			ten := servicesGoroutines(t, be.addr(), typ, 10, -1)
			hundred := servicesGoroutines(t, be.addr(), typ, 100, ten+8)
			t.Logf("goroutines over the test's own: %d with 10 services, %d with 100", ten, hundred)
			if !testkit.Within(5*time.Second, func() bool { return runtime.NumGoroutine() <= base }) {
				buf := make([]byte, 1<<20)
				t.Fatalf("goroutines: %d before, %d after the drain:\n%s", base, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
			}
		})
	}
}

// servicesGoroutines runs n services with health typ on a supervisor with
// the process's shared loops, as run does, and returns how many
// goroutines they add once settled: at most want (-1: none expected,
// wait until the count holds still). It drains them before it returns.
func servicesGoroutines(t *testing.T, backend, typ string, n, want int) int {
	t.Helper()
	base := runtime.NumGoroutine()
	var sb strings.Builder
	sb.WriteString("admin: {listen: '127.0.0.1:0'}\nshutdown: {drain_timeout: 2s}\nservices:\n")
	for i := range n {
		fmt.Fprintf(&sb, "  - {name: s%d, listen: '127.0.0.1:0', backends: {static: ['%s']}, health: {type: %s, interval: 1h}}\n", i, backend, typ)
	}
	cfg, err := config.Load(config.Source{File: writeFile(t, "c.yaml", sb.String())})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	loops, err := proxy.NewLoops(2, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	loopsDone := make(chan error, 1)
	go func() { loopsDone <- loops.Run(ctx) }()
	sup := newSupervisor(deps{Log: log, AccessLog: log, Loops: loops, Checks: health.NewChecks()}, &readiness{})
	if err := sup.Start(cfg); err != nil {
		cancel()
		<-loopsDone
		t.Fatal(err)
	}
	supDone := make(chan error, 1)
	go func() { supDone <- sup.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-supDone; err != nil {
			t.Errorf("supervisor: %v", err)
		}
		if err := <-loopsDone; err != nil {
			t.Errorf("loops: %v", err)
		}
	}()

	added := func() int { return runtime.NumGoroutine() - base }
	if want >= 0 {
		if !testkit.Within(5*time.Second, func() bool { return added() <= want }) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d services added %d goroutines, want at most %d:\n%s", n, added(), want, buf[:runtime.Stack(buf, true)])
		}
		return added()
	}
	// Start's own goroutines end once the loops have taken the listeners.
	last, still := -1, 0
	testkit.Within(5*time.Second, func() bool {
		if g := added(); g == last {
			still++
		} else {
			last, still = g, 0
		}
		time.Sleep(10 * time.Millisecond)
		return still >= 10
	})
	return last
}
