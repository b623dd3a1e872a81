package proxy

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
)

func openFDs(t testing.TB) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// TestNoLeaks runs 1,000 connections through each copy mode (bulk enough
// to take pipes in the splice modes), shuts down, and expects every
// goroutine and descriptor back.
func TestNoLeaks(t *testing.T) {
	for _, mode := range allModes {
		t.Run(mode.String(), func(t *testing.T) {
			fds0, gr0 := openFDs(t), runtime.NumGoroutine()
			be := startBackend(t, echo)
			s, err := NewService(Config{Name: "leak", Listen: "127.0.0.1:0", ZeroCopy: true},
				staticSet(t, be.addr()), Options{})
			if err != nil {
				t.Fatal(err)
			}
			forceMode(s, mode)
			if err := s.Listen(); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			served := make(chan error, 1)
			go func() { served <- s.Serve(ctx) }()

			payload := make([]byte, 96<<10) // > bufSize: the hybrid mode splices too
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
			eventually(t, 10*time.Second, "all connections closed", func() bool { return s.Active() == 0 })
			cancel()
			<-served
			s.Shutdown(context.Background())
			be.close()

			eventually(t, 10*time.Second, "descriptors and goroutines back", func() bool {
				return openFDs(t) <= fds0 && runtime.NumGoroutine() <= gr0
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

// settledFDs counts descriptors once the pipes that Go's own splice keeps
// in a sync.Pool (closed by finalizers) from earlier tests are gone.
func settledFDs(t *testing.T) int {
	for range 3 {
		runtime.GC()
	}
	last := openFDs(t)
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		n := openFDs(t)
		if n == last {
			return n
		}
		last = n
	}
	return last
}

// TestIdleConnectionFDs: an idle proxied connection costs the proxy two
// descriptors in the modes that lend pipes (six with the standard library's
// pinned pipes).
func TestIdleConnectionFDs(t *testing.T) {
	tests := []struct {
		mode copyMode
		want int
	}{
		{copyHybrid, 2},
		{copySplice, 2},
		{copyBuffer, 2},
		{copyStdlib, 6},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			be := startBackend(t, echo)
			s := startService(t, Config{ZeroCopy: true}, staticSet(t, be.addr()), tt.mode)
			const n = 50
			before := settledFDs(t)
			for range n {
				c := dial(t, s)
				roundTrip(t, c, "make it move both ways once")
			}
			eventually(t, 5*time.Second, "all dialed", func() bool { return s.Active() == n })
			// The test holds the client and backend ends: 2 per connection.
			// A loop may still be giving its pipe back after the echo
			// arrived, so the count is polled.
			var perConn float64
			for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				perConn = float64(openFDs(t)-before-2*idlePipes(s)-2*n) / n
				if perConn == float64(tt.want) || time.Now().After(deadline) {
					break
				}
			}
			t.Logf("%s: %.2f proxy fds per idle connection, %d pooled pipes", tt.mode, perConn, idlePipes(s))
			if perConn != float64(tt.want) {
				t.Errorf("fds per idle connection = %.2f, want %d", perConn, tt.want)
			}
		})
	}
}
