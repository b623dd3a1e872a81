package health

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tierlb/tierlb/internal/testkit"
)

// tcpServer is a loopback listener whose connections are handed to a
// behaviour: the misbehaving backends of the tests.
type tcpServer struct {
	ln       net.Listener
	accepted atomic.Int64
	mu       sync.Mutex
	conns    map[net.Conn]bool
	wg       sync.WaitGroup
	done     chan struct{} // closed at cleanup: behaviours stop waiting
}

// startTCP serves handle on 127.0.0.1:0 until the test ends; every
// connection and goroutine is closed and joined at cleanup.
func startTCP(t *testing.T, handle func(s *tcpServer, c net.Conn)) *tcpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := &tcpServer{ln: ln, conns: map[net.Conn]bool{}, done: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			s.mu.Lock()
			s.conns[c] = true
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer func() {
					s.mu.Lock()
					delete(s.conns, c)
					s.mu.Unlock()
					c.Close()
				}()
				handle(s, c)
			}()
		}
	}()
	t.Cleanup(func() {
		close(s.done)
		ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *tcpServer) addr() string { return s.ln.Addr().String() }

// blackhole accepts and never answers; it holds the connection until the
// peer closes it or the test ends.
func blackhole(_ *tcpServer, c net.Conn) {
	var buf [512]byte
	for {
		if _, err := c.Read(buf[:]); err != nil {
			return
		}
	}
}

// resetter accepts and resets the connection at once.
func resetter(_ *tcpServer, c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
}

// answerAfter replies with reply once delay has passed (or never, if the
// test ends first), after reading the request's first line.
func answerAfter(delay time.Duration, reply string) func(*tcpServer, net.Conn) {
	return func(s *tcpServer, c net.Conn) {
		if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
			return
		}
		select {
		case <-time.After(delay):
		case <-s.done:
			return
		}
		c.Write([]byte(reply))
	}
}

// reply writes reply after reading the first request line and closes.
func reply(r string) func(*tcpServer, net.Conn) {
	return answerAfter(0, r)
}

// banner writes b as soon as the connection opens, then waits for the peer.
func banner(b string) func(*tcpServer, net.Conn) {
	return func(s *tcpServer, c net.Conn) {
		c.Write([]byte(b))
		blackhole(s, c)
	}
}

func httpReply(status int) string {
	return fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", status, http.StatusText(status))
}

// probeCtx returns a context for one probe with the given timeout.
func probeCtx(t *testing.T, timeout time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// noLeaks fails the test if a goroutine of this package's long-lived
// pieces (or an HTTP probe connection) outlives it. Call it first, so that
// its cleanup runs last.
func noLeaks(t *testing.T) {
	t.Helper()
	markers := []string{"health.(*checkLoop).run", "health.(*checkLoop).probeAside", "health.(*Monitor).Run", "health.(*Monitor).stop", "net/http.(*persistConn)"}
	t.Cleanup(func() {
		var last string
		if testkit.Within(3*time.Second, func() bool {
			buf := make([]byte, 1<<20)
			stacks := string(buf[:runtime.Stack(buf, true)])
			last = ""
			for _, g := range strings.Split(stacks, "\n\n") {
				for _, m := range markers {
					if strings.Contains(g, m) {
						last = g
					}
				}
			}
			return last == ""
		}) {
			return
		}
		t.Errorf("goroutine left behind:\n%s", last)
	})
}

// logRecorder is a slog.Handler that keeps records for assertions.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

// messages returns "msg reason" for every record with one of the messages.
func (l *logRecorder) messages(msgs ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.recs {
		for _, m := range msgs {
			if r.Message != m {
				continue
			}
			reason := ""
			r.Attrs(func(a slog.Attr) bool {
				if a.Key == "reason" {
					reason = a.Value.String()
				}
				return true
			})
			out = append(out, m+": "+reason)
		}
	}
	return out
}

// isTimeout reports whether err is any layer's timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// probes is how many probes of backend id (of service app) m counted.
func probes(m *Metrics, id string) float64 {
	ok, fail := m.counts("app", id)
	return float64(ok + fail)
}

// counts returns a backend's probes by result, without exporting a series
// it does not have.
func (m *Metrics) counts(service, backend string) (ok, fail uint64) {
	m.checks.mu.Lock()
	defer m.checks.mu.Unlock()
	if n := m.checks.series[seriesKey{service, backend}]; n != nil {
		return n.ok.Load(), n.fail.Load()
	}
	return 0, 0
}
