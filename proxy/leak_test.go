package proxy

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/tierlb/tierlb/internal/testkit"
)

// TestNoLeaks runs 1,000 connections spliced and copied (bulk enough to
// take pipes with zero_copy), shuts down, and expects every goroutine and
// descriptor back.
func TestNoLeaks(t *testing.T) {
	for _, mode := range copyModes {
		t.Run(mode.name, func(t *testing.T) {
			fds0, gr0 := testkit.OpenFDs(t), runtime.NumGoroutine()
			be := startBackend(t, echo)
			s := newTestService(t, Config{Name: "leak", ZeroCopy: mode.zeroCopy}, staticSet(t, be.addr()), Options{})
			ctx, cancel := context.WithCancel(context.Background())
			served := make(chan error, 1)
			go func() { served <- s.Serve(ctx) }()

			payload := make([]byte, 96<<10) // > bufSize: zero_copy splices
			var wg sync.WaitGroup
			errs := make(chan error, 1000)
			sem := make(chan struct{}, 32)
			for i := range 1000 {
				wg.Add(1)
				sem <- struct{}{}
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					if err := exchange(s.Addr().String(), payload[:1+i*97%len(payload)]); err != nil {
						errs <- err
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatalf("connection failed: %v", err)
			}
			testkit.Eventually(t, 10*time.Second, "all connections closed", func() bool { return s.Active() == 0 })
			cancel()
			<-served
			s.Shutdown(context.Background())
			be.close()

			testkit.Eventually(t, 10*time.Second, "descriptors and goroutines back", func() bool {
				return testkit.OpenFDs(t) <= fds0 && runtime.NumGoroutine() <= gr0
			})
		})
	}
}

// exchange sends payload, half-closes and reads the echo back.
func exchange(addr string, payload []byte) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	go func() {
		c.Write(payload)
		c.(*net.TCPConn).CloseWrite()
	}()
	got := 0
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		got += n
		if err != nil {
			break
		}
	}
	if got != len(payload) {
		return fmt.Errorf("echoed %d of %d bytes", got, len(payload))
	}
	return nil
}

// TestIdleConnectionFDs: an idle proxied connection costs the proxy two
// descriptors, spliced or copied: pipes are lent only while bytes are in
// flight.
func TestIdleConnectionFDs(t *testing.T) {
	for _, mode := range copyModes {
		t.Run(mode.name, func(t *testing.T) {
			be := startBackend(t, echo)
			s := startService(t, Config{ZeroCopy: mode.zeroCopy}, staticSet(t, be.addr()))
			const n = 50
			// The loops' own descriptors exist once the service accepts.
			engineOf(t, s)
			runtime.GC() // finalizers close what earlier tests left to them
			before := testkit.OpenFDs(t)
			for range n {
				c := dial(t, s)
				roundTrip(t, c, "make it move both ways once")
			}
			testkit.Eventually(t, 5*time.Second, "all dialed", func() bool { return s.Active() == n })
			// The test holds the client and backend ends: 2 per connection.
			// A loop may still be giving its pipe back after the echo
			// arrived, so the count is awaited.
			perConn := func() float64 { return float64(testkit.OpenFDs(t)-before-2*idlePipes(t, s)-2*n) / n }
			if !testkit.Within(2*time.Second, func() bool { return perConn() == 2 }) {
				t.Errorf("fds per idle connection = %.2f, want 2", perConn())
			}
		})
	}
}
