package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/tierlb/tierlb/backends"
)

// testBackend is a real listener on loopback running handler per connection.
type testBackend struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
	n     int // connections accepted
}

func startBackend(t testing.TB, handler func(net.Conn)) *testBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tb := &testBackend{ln: ln}
	tb.wg.Add(1)
	go func() {
		defer tb.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tb.mu.Lock()
			tb.conns = append(tb.conns, c)
			tb.n++
			tb.mu.Unlock()
			tb.wg.Add(1)
			go func() {
				defer tb.wg.Done()
				defer c.Close()
				handler(c)
			}()
		}
	}()
	t.Cleanup(tb.close)
	return tb
}

func (tb *testBackend) addr() string { return tb.ln.Addr().String() }

func (tb *testBackend) accepted() int {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return tb.n
}

// close stops the listener and every connection, and waits for handlers.
func (tb *testBackend) close() {
	tb.ln.Close()
	tb.mu.Lock()
	for _, c := range tb.conns {
		c.Close()
	}
	tb.mu.Unlock()
	tb.wg.Wait()
}

// echo writes back everything it reads, then passes the FIN on. It copies
// through a buffer: io.Copy would splice with pipes of its own, which would
// blur the descriptor counts of the tests.
func echo(c net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			break
		}
	}
	c.(*net.TCPConn).CloseWrite()
}

// discard reads until EOF.
func discard(c net.Conn) { io.Copy(io.Discard, c) }

// staticSet makes a pool over addrs with weight 1 each.
func staticSet(t testing.TB, addrs ...string) *backends.Set {
	t.Helper()
	set := backends.NewSet("test", backends.RoundRobin, backends.SetOptions{})
	specs := make([]backends.Spec, len(addrs))
	for i, a := range addrs {
		specs[i] = backends.Spec{ID: a, Address: a, Weight: 1}
	}
	set.Update(specs)
	t.Cleanup(set.Close)
	return set
}

// startService runs a service on 127.0.0.1:0 until the test ends.
func startService(t testing.TB, cfg Config, pools Pools) *Service {
	t.Helper()
	s := newTestService(t, cfg, pools, Options{})
	serveService(t, s)
	return s
}

// newTestService returns a listening service that does not serve yet.
func newTestService(t testing.TB, cfg Config, pools Pools, opts Options) *Service {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "test"
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	s, err := NewService(cfg, pools, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	return s
}

// testLoops returns a set of n loops that runs until the end of the test
// and every service in it has shut down.
func testLoops(t testing.TB, n int) *Loops {
	t.Helper()
	return testLoopsWith(t, LoopsConfig{N: n, IOUring: true})
}

// testLoopsWith is testLoops with the loops' whole config.
func testLoopsWith(t testing.TB, cfg LoopsConfig) *Loops {
	t.Helper()
	set, err := NewLoopsWith(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- set.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return set
}

// serveService runs Serve in a goroutine and shuts the service down at the
// end of the test.
func serveService(t testing.TB, s *Service) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		s.Shutdown(sctx)
	})
}

func dial(t testing.TB, s *Service) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// readEnd reports how a read on c ends within d: io.EOF, a reset, or
// a timeout if the peer keeps it open.
func readEnd(c net.Conn, d time.Duration) error {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	if err == nil {
		return io.EOF
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return os.ErrDeadlineExceeded
	}
	return err
}

// copyModes are the two ways bytes move, as the user chooses them with
// zero_copy; every transfer test runs in both.
var copyModes = []struct {
	name     string
	zeroCopy bool
}{
	{"zero_copy", true},
	{"copy", false},
}
