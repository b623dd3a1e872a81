package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestRelayMovesBothWaysAndHalfCloses: bench/relay carries every byte both
// ways on concurrent connections, and passes each side's end of stream on,
// which a request–response exchange (and iperf3's control channel) needs.
func TestRelayMovesBothWaysAndHalfCloses(t *testing.T) {
	if _, err := exec.LookPath("cc"); err != nil {
		t.Skip("no C compiler:", err)
	}
	bin := filepath.Join(t.TempDir(), "relay")
	if err := buildRelay(context.Background(), "..", bin); err != nil {
		t.Fatal(err)
	}
	reply := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB: four pipes' worth
	bport := digestBackend(t, reply)
	// A second route's backend hangs up at once: writing on into that
	// connection must not end the relay (SIGPIPE) and the first route's.
	rport := rudeBackend(t)
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	rudePort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	ps := newProcs(t.TempDir())
	t.Cleanup(ps.stopAll)
	p, err := ps.start("relay", []string{bin, fmt.Sprintf("%d=%s", port, bport), fmt.Sprintf("%d=%s", rudePort, rport)}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Generous: a shared machine at a load of 50 stretched a 2 s test to 30 s.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := waitListening(ctx, p, []int{port, rudePort}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := rudeExchange(ctx, "127.0.0.1:"+strconv.Itoa(rudePort)); err != nil {
		t.Fatal(err)
	}

	const conns = 4
	errs := make(chan error, conns)
	for i := range conns {
		go func() { errs <- exchange(ctx, "127.0.0.1:"+strconv.Itoa(port), (i+1)<<19, reply) }()
	}
	for range conns {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if p.exited() {
		t.Errorf("the relay exited (%v): %s", p.waitErr, p.logTail())
	}
}

// serve runs handle on every connection ln accepts, until the test ends,
// and returns ln's port.
func serve(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// digestBackend reads each request to its end, then answers with its
// digest followed by reply, and closes.
func digestBackend(t *testing.T, reply []byte) string {
	return serve(t, func(c net.Conn) {
		defer c.Close()
		h := sha256.New()
		if _, err := io.Copy(h, c); err != nil {
			return
		}
		c.Write(h.Sum(nil))
		c.Write(reply)
	})
}

// rudeBackend resets every connection at once, so the relay's next write
// into it fails.
func rudeBackend(t *testing.T) string {
	return serve(t, func(c net.Conn) {
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
}

// rudeExchange waits until the relay has passed on the backend's reset (the
// relay's read took the error, and it half-closed towards the client), then
// sends: the relay's write into the reset socket is the one that raises
// SIGPIPE. It returns once the connection is gone (the relay closed it, or
// died), which a write then fails to find.
func rudeExchange(ctx context.Context, addr string) error {
	c, err := dialUntil(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if n, err := io.Copy(io.Discard, c); err != nil || n != 0 {
		return fmt.Errorf("before the reset was passed on: %d bytes, %v", n, err)
	}
	chunk := make([]byte, 4<<10)
	for {
		if _, err := c.Write(chunk); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return fmt.Errorf("the relay kept the connection open: %w", err)
			}
			return nil
		}
		time.Sleep(time.Millisecond) // one chunk at a time, so the error comes soon after the close
	}
}

// exchange sends n bytes, half-closes, and checks the backend's digest of
// them and its reply.
func exchange(ctx context.Context, addr string, n int, reply []byte) error {
	c, err := dialUntil(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	req := bytes.Repeat([]byte{byte(n >> 19)}, n)
	go func() {
		c.Write(req)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		return fmt.Errorf("%d bytes: read: %w", n, err)
	}
	sum := sha256.Sum256(req)
	switch {
	case len(got) != len(sum)+len(reply):
		return fmt.Errorf("%d bytes: got %d back, want %d", n, len(got), len(sum)+len(reply))
	case !bytes.Equal(got[:len(sum)], sum[:]):
		return errors.New("the backend received other bytes than were sent")
	case !bytes.Equal(got[len(sum):], reply):
		return errors.New("the reply arrived changed")
	}
	return nil
}

// dialUntil connects to addr with ctx's deadline on every read and write.
func dialUntil(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	deadline, _ := ctx.Deadline()
	c.SetDeadline(deadline)
	return c, nil
}
