//go:build linux

package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tierlb/tierlb/internal/testkit"
)

// needRing skips where the kernel offers no io_uring: the loops then
// pump every direction, which every other test covers.
func needRing(t *testing.T, loops *Loops) {
	t.Helper()
	var ok bool
	done := make(chan struct{})
	loops.Loops()[0].Call(func() { ok = tcpLoop(loops.Loops()[0]).io.ring != nil; close(done) })
	<-done
	if !ok {
		t.Skip("no io_uring in this kernel or sandbox: small messages are pumped one at a time")
	}
}

// ringEcho serves an echo backend in one loop with a ring, whose
// messages are kept.
func ringEcho(t *testing.T) (*Service, *Loops, *testkit.Messages) {
	t.Helper()
	be := startBackend(t, echo)
	logs := &testkit.Messages{}
	loops := testLoopsWith(t, LoopsConfig{N: 1, Log: slog.New(logs), IOUring: true})
	s := newTestService(t, Config{}, staticSet(t, be.addr()), Options{Loops: loops})
	serveService(t, s)
	needRing(t, loops)
	return s, loops, logs
}

// TestBatchManyConns: more connections than one batch holds send at once,
// in one loop, round after round; every answer comes back whole and in
// order, small messages and bursts mixed in the same wakeups.
func TestBatchManyConns(t *testing.T) {
	for _, mode := range copyModes {
		t.Run(mode.name, func(t *testing.T) {
			be := startBackend(t, echo)
			loops := testLoops(t, 1)
			s := newTestService(t, Config{ZeroCopy: mode.zeroCopy}, staticSet(t, be.addr()), Options{Loops: loops})
			serveService(t, s)
			needRing(t, loops)
			const conns, rounds = 2*batchMax + 5, 40
			cs := make([]*net.TCPConn, conns)
			for i := range cs {
				cs[i] = dial(t, s)
			}
			deadline := time.Now().Add(30 * time.Second)
			for r := range rounds {
				msgs := make([][]byte, conns)
				for i, c := range cs {
					size := 100 + i
					if i%16 == 3 && r%4 == 1 {
						size = 200 << 10 // a burst among the small ones
					}
					msgs[i] = bytes.Repeat([]byte{byte('a' + (i+r)%26)}, size)
					c.SetDeadline(deadline)
				}
				var wg sync.WaitGroup
				for i, c := range cs {
					wg.Go(func() { c.Write(msgs[i]) })
				}
				for i, c := range cs {
					got := make([]byte, len(msgs[i]))
					if _, err := io.ReadFull(c, got); err != nil {
						t.Fatalf("round %d, conn %d: %v", r, i, err)
					}
					if !bytes.Equal(got, msgs[i]) {
						t.Fatalf("round %d, conn %d: answer differs from the message", r, i)
					}
				}
				wg.Wait()
			}
		})
	}
}

// TestBatchRingFails: a loop whose ring stops working (here its
// descriptor is replaced) says so once, fails only the connections whose
// bytes were in the lost batch, and serves on without batching.
func TestBatchRingFails(t *testing.T) {
	s, _, logs := ringEcho(t)
	deadline := time.Now().Add(20 * time.Second)
	ping := func(c net.Conn) error {
		got := make([]byte, 4)
		if _, err := io.ReadFull(c, got); err != nil {
			return err
		}
		if string(got) != "ping" {
			return fmt.Errorf("answer %q", got)
		}
		return nil
	}
	// All of them at once, so that the loop finds several readable in
	// one wakeup: a message alone is not batched.
	pingAll := func(cs []net.Conn) (ok []net.Conn) {
		for _, c := range cs {
			c.SetDeadline(deadline)
			c.Write([]byte("ping"))
		}
		for _, c := range cs {
			if ping(c) == nil {
				ok = append(ok, c)
			}
		}
		return ok
	}
	var cs []net.Conn
	for range 16 {
		cs = append(cs, dial(t, s))
	}
	if ok := pingAll(cs); len(ok) != len(cs) {
		t.Fatalf("%d of %d connections answered before the ring failed", len(ok), len(cs))
	}
	testkit.BreakRings(t)
	alive := cs
	for round := 0; logs.Count("io_uring batch failed") == 0; round++ {
		if round == 100 {
			t.Fatal("100 rounds of 16 messages at once and no batch of two or more")
		}
		alive = pingAll(alive)
	}
	// The lost batch's connections are reset rather than left hanging
	// with bytes they sent and nobody read; the others go on.
	if len(alive) == len(cs) {
		t.Error("no connection of the lost batch was reset")
	}
	if ok := pingAll(alive); len(ok) != len(alive) {
		t.Errorf("%d of the %d connections left answered after the ring failed", len(ok), len(alive))
	}
	for i := range 3 {
		if ok := pingAll([]net.Conn{dial(t, s)}); len(ok) != 1 {
			t.Fatalf("new connection %d after the ring failed: no answer", i)
		}
	}
	if n := logs.Count("io_uring batch failed"); n != 1 {
		t.Errorf("%d warnings of the failed batch, want 1", n)
	}
}

// TestBatchOff: loops made without io_uring hold no ring and serve.
func TestBatchOff(t *testing.T) {
	be := startBackend(t, echo)
	loops := testLoopsWith(t, LoopsConfig{N: 1})
	s := newTestService(t, Config{}, staticSet(t, be.addr()), Options{Loops: loops})
	serveService(t, s)
	c := dial(t, s)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "ping" {
		t.Fatalf("answer %q, %v", got, err)
	}
	if n := len(testkit.RingFDs(t)); n != 0 {
		t.Errorf("%d io_uring descriptors with io_uring off, want 0", n)
	}
}

// TestBatchFullDestination: small messages, batched as they arrive, to a
// backend with a small receive buffer that reads nothing for a while: the
// sends find its socket full, the rest waits pending, and the loop goes
// back from pending bytes to batched reads until, once the backend reads,
// every byte has arrived in order.
func TestBatchFullDestination(t *testing.T) {
	const total, chunk = 2 << 20, 1 << 10
	got := make(chan []byte, 1)
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<10) })
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		time.Sleep(300 * time.Millisecond)
		b, _ := io.ReadAll(c)
		got <- b
	}()
	loops := testLoops(t, 1)
	s := newTestService(t, Config{}, staticSet(t, ln.Addr().String()), Options{Loops: loops})
	serveService(t, s)
	needRing(t, loops)
	c := dial(t, s)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	want := make([]byte, total)
	for i := range want {
		want[i] = byte(i * 7 / chunk)
	}
	for off := 0; off < total; off += chunk {
		if _, err := c.Write(want[off : off+chunk]); err != nil {
			t.Fatalf("write at %d: %v", off, err)
		}
		if off%(64*chunk) == 0 {
			time.Sleep(time.Millisecond) // let the loop read small pieces
		}
	}
	c.CloseWrite()
	select {
	case b := <-got:
		if !bytes.Equal(b, want) {
			t.Fatalf("backend got %d bytes, not the %d sent in order", len(b), len(want))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the backend did not get every byte")
	}
}

// TestBatchCloses: connections that start and end in the same wakeups
// have their client sockets registered and their sockets closed together
// through the ring; every descriptor is gone afterwards and each client
// reads its end; after the ring fails, registrations and closes go on one
// by one. (A connection's two closes are a batch of two, so every other
// test that ends a connection, resets included, closes through the ring
// too, and every test registers its clients through it.)
func TestBatchCloses(t *testing.T) {
	s, loops, logs := ringEcho(t)
	el := loops.Loops()[0]
	endedByRing := func() int {
		var n int
		done := make(chan struct{})
		el.Call(func() { n = tcpLoop(el).io.nending; close(done) })
		<-done
		return n
	}
	before := testkit.OpenFDs(t)
	deadline := time.Now().Add(20 * time.Second)
	// round opens n connections, echoes a message on each, then ends them
	// all at once (clients half-close; the backend's echo ends too) and
	// waits for every client to read the end. It returns how many were
	// reset instead, which only a failing ring may do.
	round := func(n int) (reset int) {
		t.Helper()
		cs := make([]*net.TCPConn, n)
		for i := range cs {
			cs[i] = dial(t, s)
			defer cs[i].Close()
			cs[i].SetDeadline(deadline)
			if _, err := cs[i].Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
		}
		for i, c := range cs {
			got := make([]byte, 4)
			if _, err := io.ReadFull(c, got); errors.Is(err, syscall.ECONNRESET) {
				cs[i] = nil
				reset++
			} else if err != nil || string(got) != "ping" {
				t.Fatalf("connection %d: answer %q, %v", i, got, err)
			}
		}
		for _, c := range cs {
			if c != nil {
				c.CloseWrite()
			}
		}
		for i, c := range cs {
			if c == nil {
				continue
			}
			if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Fatalf("connection %d after both ends closed: read %d, %v; want EOF", i, n, err)
			}
		}
		return reset
	}
	for r := 0; endedByRing() == 0; r++ {
		if r == 50 {
			t.Fatal("50 rounds of 40 connections ending at once, and no two sockets registered or closed in one batch")
		}
		if n := round(40); n > 0 {
			t.Fatalf("%d connections reset with a working ring", n)
		}
	}
	testkit.Eventually(t, 10*time.Second, "every socket closed", func() bool { return s.Active() == 0 && testkit.OpenFDs(t) <= before })

	// After the ring fails, closes are made one by one, and none is lost.
	testkit.BreakRings(t)
	// The ring fails in the first batch: its connections are reset
	// (TestBatchRingFails), the others go on.
	for r := 0; logs.Count("io_uring batch failed") == 0; r++ {
		if r == 50 {
			t.Fatal("50 rounds after the ring's descriptor was replaced, and no failure")
		}
		round(40)
	}
	for range 3 {
		if n := round(40); n > 0 {
			t.Fatalf("%d connections reset after the ring failed", n)
		}
	}
	testkit.Eventually(t, 10*time.Second, "every socket closed after the ring failed", func() bool {
		return s.Active() == 0 && testkit.OpenFDs(t) <= before
	})
	if n := logs.Count("io_uring batch failed"); n != 1 {
		t.Errorf("%d warnings of the failed ring, want 1", n)
	}
}
