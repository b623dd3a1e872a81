package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tierlb/tierlb/internal/testkit"
)

// accessLog captures the access log lines of a service.
type accessLog struct {
	mu    sync.Mutex
	lines []map[string]any
}

func (a *accessLog) Enabled(context.Context, slog.Level) bool { return true }
func (a *accessLog) WithAttrs([]slog.Attr) slog.Handler       { return a }
func (a *accessLog) WithGroup(string) slog.Handler            { return a }
func (a *accessLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "connection" {
		return nil
	}
	m := map[string]any{}
	r.Attrs(func(at slog.Attr) bool {
		m[at.Key] = at.Value.Any()
		return true
	})
	a.mu.Lock()
	a.lines = append(a.lines, m)
	a.mu.Unlock()
	return nil
}

// ends returns the end reasons logged so far.
func (a *accessLog) ends() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, l := range a.lines {
		out = append(out, l["end"].(string))
	}
	return out
}

// waitEnd waits for the first access log line and returns its end reason.
func (a *accessLog) waitEnd(t *testing.T) string {
	t.Helper()
	testkit.Eventually(t, 5*time.Second, "access log line", func() bool { return len(a.ends()) > 0 })
	return a.ends()[0]
}

// loggedService starts a service that writes its access log to a capture.
func loggedService(t *testing.T, cfg Config, pools Pools) (*Service, *accessLog) {
	t.Helper()
	al := &accessLog{}
	cfg.Name, cfg.Listen, cfg.AccessLog = "sem", "127.0.0.1:0", true
	s, err := NewService(cfg, pools, Options{Logger: slog.New(al)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	serveService(t, s)
	return s, al
}

// TestIdleTimeout: traffic keeps a connection open; silence longer than
// the idle timeout closes it, logged as idle_timeout.
func TestIdleTimeout(t *testing.T) {
	for _, mode := range copyModes {
		t.Run(mode.name, func(t *testing.T) {
			be := startBackend(t, echo)
			// Traffic every idle/5: a busy machine must stall this
			// goroutine for 800 ms before the proxy rightly sees a
			// second of silence mid-test.
			idle := time.Second
			s, al := loggedService(t, Config{ZeroCopy: mode.zeroCopy, Timeouts: Timeouts{Idle: idle}}, staticSet(t, be.addr()))
			c := dial(t, s)
			var t0 time.Time
			for i := range 8 { // 1.4 s of traffic, well past one idle period
				if i > 0 {
					time.Sleep(idle / 5)
				}
				// Taken before the round trip: the proxy stamps its last
				// traffic after this, so the silence measured from t0 is
				// never shorter than the proxy's, however late this
				// goroutine runs again on a busy machine.
				t0 = time.Now()
				roundTrip(t, c, "ping")
			}
			if err := readEnd(c, 5*time.Second); err != io.EOF {
				t.Fatalf("idle connection ended with %v, want EOF", err)
			}
			if d := time.Since(t0); d < idle-50*time.Millisecond || d > idle+time.Second {
				t.Errorf("closed after %v of silence, want about %v", d, idle)
			}
			if end := al.waitEnd(t); end != EndIdleTimeout {
				t.Errorf("end = %q, want %q", end, EndIdleTimeout)
			}
		})
	}
}

// TestHalfCloseTimeout: after the client's FIN, a backend that neither
// answers nor closes gets timeouts.half_close, then both sides close.
func TestHalfCloseTimeout(t *testing.T) {
	hold := make(chan struct{})
	be := startBackend(t, func(c net.Conn) { <-hold })
	t.Cleanup(func() { close(hold) }) // runs before the backend's cleanup waits
	s, al := loggedService(t, Config{ZeroCopy: true, Timeouts: Timeouts{HalfClose: 200 * time.Millisecond}},
		staticSet(t, be.addr()))
	c := dial(t, s)
	roundTripNone(t, c)
	c.CloseWrite()
	t0 := time.Now()
	if err := readEnd(c, 5*time.Second); err != io.EOF {
		t.Fatalf("half-closed connection ended with %v, want EOF", err)
	}
	if d := time.Since(t0); d < 150*time.Millisecond || d > 2*time.Second {
		t.Errorf("closed %v after the FIN, want about 200ms", d)
	}
	if end := al.waitEnd(t); end != EndClientClose {
		t.Errorf("end = %q, want %q", end, EndClientClose)
	}
}

// roundTripNone makes sure the connection is established end to end.
func roundTripNone(t *testing.T, c *net.TCPConn) {
	t.Helper()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
}

// TestResetPropagates: when one side resets, the other gets an RST too,
// in every copy mode and both directions.
func TestResetPropagates(t *testing.T) {
	for _, mode := range copyModes {
		t.Run(mode.name+"/client resets", func(t *testing.T) {
			seen := make(chan error, 1)
			be := startBackend(t, func(c net.Conn) {
				c.Write([]byte("ready"))
				_, err := io.Copy(io.Discard, c)
				seen <- err
			})
			s, al := loggedService(t, Config{ZeroCopy: mode.zeroCopy}, staticSet(t, be.addr()))
			c := dial(t, s)
			readN(t, c, 5)
			c.SetLinger(0)
			c.Close()
			select {
			case err := <-seen:
				if !errors.Is(err, unix.ECONNRESET) {
					t.Fatalf("backend read ended with %v, want a reset", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("backend never saw the client's reset")
			}
			if end := al.waitEnd(t); end == EndClientClose || end == EndBackendClose {
				t.Errorf("end = %q, want an error", end)
			}
		})
		t.Run(mode.name+"/backend resets", func(t *testing.T) {
			be := startBackend(t, func(c net.Conn) {
				// Reset only once the client has the data: an RST
				// discards what is still unsent on any hop.
				c.Write([]byte("ready"))
				io.ReadFull(c, make([]byte, 2))
				c.(*net.TCPConn).SetLinger(0)
			})
			s := startService(t, Config{ZeroCopy: mode.zeroCopy}, staticSet(t, be.addr()))
			c := dial(t, s)
			readN(t, c, 5)
			c.Write([]byte("go"))
			if err := readEnd(c, 5*time.Second); !errors.Is(err, unix.ECONNRESET) {
				t.Fatalf("client read ended with %v, want a reset", err)
			}
		})
	}
}

func readN(t *testing.T, c net.Conn, n int) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Time{})
}

// TestOnBackendDown: with on_backend_down: close a backend going down cuts
// its connections; with keep they go on.
func TestOnBackendDown(t *testing.T) {
	for _, closeOnDown := range []bool{true, false} {
		name := "keep"
		if closeOnDown {
			name = "close"
		}
		t.Run(name, func(t *testing.T) {
			be := startBackend(t, echo)
			set := staticSet(t, be.addr())
			s, al := loggedService(t, Config{ZeroCopy: true, CloseOnBackendDown: closeOnDown}, set)
			c := dial(t, s)
			roundTrip(t, c, "before")
			set.Backends()[0].SetHealth(false, "test says down")
			if !closeOnDown {
				roundTrip(t, c, "after: kept")
				return
			}
			if err := readEnd(c, 5*time.Second); !errors.Is(err, unix.ECONNRESET) {
				t.Fatalf("connection to a down backend ended with %v, want a reset", err)
			}
			if end := al.waitEnd(t); end != "error: backend went down" {
				t.Errorf("end = %q", end)
			}
		})
	}
}

// TestSocketOptions: both legs carry keepalive well under 900s,
// TCP_USER_TIMEOUT and TCP_NODELAY; the client leg inherits them from the
// listener, the backend leg has TCP_NODELAY from the start and the others
// once the connection has lasted legOptionsAfter.
func TestSocketOptions(t *testing.T) {
	be := startBackend(t, echo)
	s := startService(t, Config{ZeroCopy: true}, staticSet(t, be.addr()))
	c := dial(t, s)
	roundTrip(t, c, "x")
	conns := connFDs(t, s)
	if len(conns) != 1 {
		t.Fatalf("open connections: %d, want 1", len(conns))
	}
	legs := legOptions()
	opts := append(legs[:], sockopt{unix.IPPROTO_TCP, unix.TCP_NODELAY, 1})
	missing := func(fd int) []string {
		var out []string
		for _, o := range opts {
			if got, err := unix.GetsockoptInt(fd, o.level, o.name); err != nil || got != o.value {
				out = append(out, fmt.Sprintf("option %d/%d = %d (%v), want %d", o.level, o.name, got, err, o.value))
			}
		}
		return out
	}
	if m := missing(conns[0][0]); m != nil {
		t.Errorf("client: %v", m)
	}
	if got, err := unix.GetsockoptInt(conns[0][1], unix.IPPROTO_TCP, unix.TCP_NODELAY); err != nil || got != 1 {
		t.Errorf("backend: TCP_NODELAY = %d (%v) from the start, want 1", got, err)
	}
	deadline := time.Now().Add(legOptionsAfter + 10*time.Second)
	for m := missing(conns[0][1]); m != nil; m = missing(conns[0][1]) {
		if time.Now().After(deadline) {
			t.Fatalf("backend, %v after the accept: %v", legOptionsAfter+10*time.Second, m)
		}
		time.Sleep(50 * time.Millisecond)
	}
	roundTrip(t, c, "still open")
	if userTimeout >= 900*time.Second || keepAliveIdle+keepAliveCount*keepAliveInterval >= 900*time.Second {
		t.Error("keepalive does not detect a dead peer well under 900s")
	}
}

// TestLastBytesCarryTheFIN: an answer that ends with the backend's FIN
// reaches the client as one segment, data and FIN together, not as data
// and then a bare FIN: the client sees the SYN-ACK and that one segment.
func TestLastBytesCarryTheFIN(t *testing.T) {
	be := startBackend(t, func(c net.Conn) {
		// Data and FIN leave the backend in one segment too, so that the
		// proxy learns both in one wakeup.
		rc, err := c.(*net.TCPConn).SyscallConn()
		if err != nil {
			return
		}
		rc.Write(func(fd uintptr) bool {
			unix.Send(int(fd), []byte("bye"), unix.MSG_MORE)
			return true
		})
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, c)
	})
	s := startService(t, Config{ZeroCopy: true}, staticSet(t, be.addr()))
	c := dial(t, s)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "bye" {
		t.Fatalf("read %q, %v; want \"bye\" and EOF", got, err)
	}
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var info *unix.TCPInfo
	rc.Control(func(fd uintptr) { info, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) })
	if err != nil {
		t.Fatal(err)
	}
	if info.Segs_in != 2 {
		t.Errorf("client received %d segments, want 2 (SYN-ACK, then data with FIN)", info.Segs_in)
	}
}
