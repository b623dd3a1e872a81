package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestSmallRelay: bench/relay/small.c, in both modes, carries every byte
// both ways, keeps what a send left over until it is sent, passes each
// side's end of stream on, closes on a reset without dying, and leaves no
// descriptor behind however many connections come and go.
func TestSmallRelay(t *testing.T) {
	if _, err := exec.LookPath("cc"); err != nil {
		t.Skip("no C compiler:", err)
	}
	bin := filepath.Join(t.TempDir(), "small")
	if err := buildSmall(context.Background(), "..", bin); err != nil {
		t.Fatal(err)
	}
	reply := bytes.Repeat([]byte("0123456789abcdef"), 1<<12) // 64 KiB: four buffers' worth
	digest := digestBackend(t, reply)
	rude := rudeBackend(t)
	slowEcho := echoBackend(t, 200*time.Millisecond)
	echo := echoBackend(t, 0)
	oneShot := oneShotBackend(t)
	for _, mode := range []string{"epoll", "uring"} {
		t.Run(mode, func(t *testing.T) {
			if mode == "uring" {
				if err := probeUring(context.Background(), bin); errors.Is(err, errSkipped) {
					t.Skip(err) // ENOSYS, seccomp, kernel.io_uring_disabled
				} else if err != nil {
					t.Fatal(err)
				}
			}
			ports := make([]int, 5)
			argv := []string{bin, mode}
			for i, backend := range []string{digest, rude, slowEcho, oneShot, echo} {
				p, err := freePort()
				if err != nil {
					t.Fatal(err)
				}
				ports[i] = p
				argv = append(argv, fmt.Sprintf("%d=%s", p, backend))
			}
			addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
			ps := newProcs(t.TempDir())
			t.Cleanup(ps.stopAll)
			p, err := ps.start(mode+"-relay", argv, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			// Generous: a shared machine at a load of 50 stretched a 2 s test to 30 s.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := waitListening(ctx, p, ports, 10*time.Second); err != nil {
				t.Fatal(err)
			}
			fds0, _, err := fdCount(p.pid())
			if err != nil {
				t.Fatal(err)
			}

			t.Run("both ways, half-close", func(t *testing.T) {
				const conns = 4
				errs := make(chan error, conns)
				for i := range conns {
					go func() { errs <- exchange(ctx, addr(0), (i+1)<<17, reply) }()
				}
				for range conns {
					if err := <-errs; err != nil {
						t.Error(err)
					}
				}
			})
			t.Run("partial sends", func(t *testing.T) {
				if err := slowExchange(ctx, addr(2), 4<<20); err != nil {
					t.Error(err)
				}
			})
			t.Run("reset", func(t *testing.T) {
				if err := rudeExchange(ctx, addr(1)); err != nil {
					t.Error(err)
				}
			})
			t.Run("many connections", func(t *testing.T) {
				// Half end as in the close scenario (the backend answers and
				// closes), half as a keep-alive client does (it closes first).
				// The second batch finds the memory the first left behind.
				var rss [2]int64
				for batch := range rss {
					for i := range 400 {
						f, target := pingBackendCloses, addr(3)
						if i%2 == 1 {
							f, target = pingClientCloses, addr(4)
						}
						if err := f(ctx, target); err != nil {
							t.Fatalf("connection %d: %v", i, err)
						}
					}
					if rss[batch], err = rssKB(p.pid()); err != nil {
						t.Fatal(err)
					}
				}
				if rss[1] > rss[0]+512 {
					t.Errorf("RSS grew from %d KB to %d KB over 400 more connections, one at a time", rss[0], rss[1])
				}
				// The relay closes a connection once both ends are passed on,
				// just after the client saw its end: wait for it.
				var fds int
				for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
					if fds, _, err = fdCount(p.pid()); err != nil || fds <= fds0 {
						break
					}
				}
				if err != nil || fds > fds0 {
					t.Errorf("%d descriptors after 800 connections, %d before (%v)", fds, fds0, err)
				}
			})
			if p.exited() {
				t.Errorf("the relay exited (%v): %s", p.waitErr, p.logTail())
			}
		})
	}
}

// echoBackend sends back what it reads, after a pause, and passes the end
// of stream on. With a pause, the relay meets a full socket on the way
// there while it waits, and one on the way back while the client waits.
func echoBackend(t *testing.T, pause time.Duration) string {
	return serve(t, func(c net.Conn) {
		defer c.Close()
		time.Sleep(pause)
		if _, err := io.Copy(c, c); err == nil {
			c.(*net.TCPConn).CloseWrite()
		}
	})
}

// oneShotBackend answers one line and closes, as whoami does a
// Connection: close request.
func oneShotBackend(t *testing.T) string {
	return serve(t, func(c net.Conn) {
		defer c.Close()
		if line, err := bufio.NewReader(c).ReadString('\n'); err == nil {
			c.Write([]byte("re: " + line))
		}
	})
}

// slowExchange sends n bytes through the slow echo backend and reads them
// back only after a pause, so that both of the relay's directions find the
// next socket full and must keep the rest of a send.
func slowExchange(ctx context.Context, addr string, n int) error {
	c, err := dialUntil(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	msg := make([]byte, n)
	for i := range msg {
		msg[i] = byte(i * 7 / 5)
	}
	go func() {
		c.Write(msg)
		c.(*net.TCPConn).CloseWrite()
	}()
	time.Sleep(300 * time.Millisecond)
	got, err := io.ReadAll(c)
	if err != nil {
		return fmt.Errorf("read after %d bytes: %w", len(got), err)
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("got %d bytes back, want the %d sent, unchanged", len(got), n)
	}
	return nil
}

// pingBackendCloses sends a line to the one-shot backend and reads its
// answer to the end of stream.
func pingBackendCloses(ctx context.Context, addr string) error {
	c, err := dialUntil(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "re: ping\n" {
		return fmt.Errorf("got %q, %v", got, err)
	}
	return nil
}

// pingClientCloses has a line echoed and closes with the backend still
// open, as a keep-alive client does.
func pingClientCloses(ctx context.Context, addr string) error {
	c, err := dialUntil(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "ping\n" {
		return fmt.Errorf("got %q, %v", got, err)
	}
	return nil
}
