package main

import (
	"context"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/tierlb/tierlb/config"
	"github.com/tierlb/tierlb/internal/testkit"
)

func testConfig(t *testing.T, services ...[3]string) *config.Config {
	t.Helper()
	cfg, err := config.Load(config.Source{File: writeFile(t, "c.yaml", reloadConfig(services...))})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Shutdown.DrainTimeout = 2 * time.Second
	return cfg
}

// runSupervisor starts a supervisor on cfg and runs it until the test
// ends, failing the test if Run returns an error.
func runSupervisor(t *testing.T, cfg *config.Config) *supervisor {
	t.Helper()
	sup := newSupervisor(deps{Log: slog.New(slog.DiscardHandler)}, &readiness{})
	if err := sup.Start(cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return sup
}

// TestApplyHandsAddressOver moves an address from a removed service to a
// new one within one reload: the new listener binds after the old closes.
func TestApplyHandsAddressOver(t *testing.T) {
	before := runtime.NumGoroutine()
	ba, bb := startBackend(t, "a"), startBackend(t, "b")
	shared := testkit.ClosedPort(t)
	sup := newSupervisor(deps{Log: slog.New(slog.DiscardHandler)}, &readiness{})
	if err := sup.Start(testConfig(t, [3]string{"a", shared, ba.addr()})); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx) }()
	stop := sync.OnceValue(func() error {
		cancel()
		return <-done
	})
	t.Cleanup(func() { _ = stop() })
	if ok, why := sup.ready.Ready(); !ok {
		t.Errorf("not ready after Start: %s", why)
	}
	if got := waitGreeting(t, shared); got != "a" {
		t.Fatalf("greeting %q, want a", got)
	}

	other := testkit.ClosedPort(t)
	if err := sup.Apply(testConfig(t, [3]string{"b", shared, bb.addr()}, [3]string{"c", other, ba.addr()})); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if got := waitGreetingFrom(t, shared, "b"); got != "b" {
		t.Errorf("shared address answered %q, want b", got)
	}
	if names := sup.Services(); len(names) != 2 || names[0].Name != "b" || names[1].Name != "c" {
		t.Errorf("services %+v, want b and c", names)
	}

	// A reload whose new listener cannot bind changes nothing.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	err = sup.Apply(testConfig(t, [3]string{"d", taken.Addr().String(), ba.addr()}))
	if err == nil {
		t.Fatal("apply with a taken port succeeded")
	}
	if got := waitGreeting(t, shared); got != "b" {
		t.Errorf("after a failed apply: %q, want b still", got)
	}
	if len(sup.Services()) != 2 {
		t.Errorf("failed apply changed the services: %+v", sup.Services())
	}

	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	if ok, _ := sup.ready.Ready(); ok {
		t.Error("ready after the drain started")
	}
	// Every goroutine of the services (accept loops, monitors, drains)
	// is gone.
	// The two test backends' accept loops are still running.
	if !testkit.Within(5*time.Second, func() bool { return runtime.NumGoroutine() <= before+2 }) {
		buf := make([]byte, 1<<16)
		t.Fatalf("goroutines: %d before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
	}
}
