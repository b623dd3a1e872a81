//go:build linux

package udp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tierlb/tierlb/backends"
	"github.com/tierlb/tierlb/proxy/internal/evloop"
)

// testBackend is a UDP server on loopback. It answers each datagram with
// its id, a space and the datagram, or with the datagram alone when echo
// is set (so that a 65,507-byte datagram comes back as it went).
type testBackend struct {
	id   string
	conn *net.UDPConn
	done chan struct{}
}

func startBackend(t testing.TB, network, addr, id string, echo bool) *testBackend {
	t.Helper()
	return startBackendSeeing(t, network, addr, id, echo, nil)
}

// startBackendSeeing is startBackend with seen, when not nil, told the
// source of each datagram before it is answered.
func startBackendSeeing(t testing.TB, network, addr, id string, echo bool, seen func(netip.AddrPort)) *testBackend {
	t.Helper()
	la, err := net.ResolveUDPAddr(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenUDP(network, la)
	if err != nil {
		t.Fatalf("backend %s: %v", id, err)
	}
	tb := &testBackend{id: id, conn: c, done: make(chan struct{})}
	go func() {
		defer close(tb.done)
		buf := make([]byte, 1<<16)
		out := make([]byte, 0, 1<<16+64)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			if seen != nil {
				seen(from)
			}
			out = out[:0]
			if !echo {
				out = append(out, id...)
				out = append(out, ' ')
			}
			out = append(out, buf[:n]...)
			_, _ = c.WriteToUDPAddrPort(out, from)
		}
	}()
	t.Cleanup(tb.stop)
	return tb
}

func (tb *testBackend) addr() string { return tb.conn.LocalAddr().String() }

// stop closes the socket: datagrams to its port get ICMP port unreachable.
func (tb *testBackend) stop() {
	_ = tb.conn.Close()
	<-tb.done
}

// newSet returns a set over the backends, with IDs as given.
func newSet(t testing.TB, policy backends.Policy, bs ...*testBackend) *backends.Set {
	t.Helper()
	set := backends.NewSet("dns", policy, backends.SetOptions{})
	specs := make([]backends.Spec, len(bs))
	for i, b := range bs {
		specs[i] = backends.Spec{ID: b.id, Address: b.addr(), Weight: 1}
	}
	set.Update(specs)
	t.Cleanup(set.Close)
	return set
}

// accessLog collects access log lines.
type accessLog struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	discard bool // count memory without the lines kept here
}

// discardLines stops keeping lines; the loops may be writing already.
func (a *accessLog) discardLines() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.discard = true
}

func (a *accessLog) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.discard {
		return len(p), nil
	}
	return a.buf.Write(p)
}

func (a *accessLog) lines(t testing.TB) []map[string]any {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(a.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("access log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// harness is a running service with its registry and access log.
type harness struct {
	svc *Service
	m   *Metrics
	reg *prometheus.Registry
	log *accessLog
}

// testLoops returns a set of n loops that runs until the end of the test
// and every service in it has shut down.
func testLoops(t testing.TB, n int) *evloop.Set {
	t.Helper()
	return testLoopsWith(t, n, true, nil)
}

// testLoopsWith is testLoops with io_uring as rings says, logging to log.
func testLoopsWith(t testing.TB, n int, rings bool, log *slog.Logger) *evloop.Set {
	t.Helper()
	set, err := evloop.NewSetWith(n, log, rings)
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

// serve starts a service on cfg (Listen defaults to 127.0.0.1:0) and
// shuts it down at cleanup.
func serve(t testing.TB, cfg Config, pools Pools, loops int) *harness {
	t.Helper()
	var set *evloop.Set
	if loops > 1 {
		set = testLoops(t, loops)
	}
	return serveIn(t, cfg, pools, set)
}

// serveIn is serve in the loops of set (nil: loops of the service's
// own).
func serveIn(t testing.TB, cfg Config, pools Pools, set *evloop.Set) *harness {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "dns"
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	cfg.AccessLog = true
	h := &harness{reg: prometheus.NewRegistry(), log: &accessLog{}}
	m, err := NewMetrics(h.reg)
	if err != nil {
		t.Fatal(err)
	}
	h.m = m
	opts := Options{
		AccessLog: slog.New(slog.NewJSONHandler(h.log, nil)),
		Metrics:   m,
	}
	opts.Loops = set
	if testing.Verbose() {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	h.svc, err = NewService(cfg, pools, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.svc.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- h.svc.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		// Tests of draining call Shutdown themselves: here open sessions
		// are cut at once.
		sctx, scancel := context.WithCancel(context.Background())
		scancel()
		_ = h.svc.Shutdown(sctx)
	})
	return h
}

func (h *harness) addr() string { return h.svc.Addr().String() }

// dial opens a client socket to the service: a new client address, so a
// new session.
func dial(t testing.TB, addr string) *net.UDPConn {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c.(*net.UDPConn)
}

// exchange sends msg and returns the first reply, sending again after
// each wait of per without one, up to tries times.
func exchange(c *net.UDPConn, msg []byte, per time.Duration, tries int) ([]byte, error) {
	buf := make([]byte, 1<<16)
	var err error
	for range tries {
		if _, err = c.Write(msg); err != nil {
			continue // a refusal from an earlier datagram surfaces here
		}
		_ = c.SetReadDeadline(time.Now().Add(per))
		var n int
		n, err = c.Read(buf)
		if err == nil {
			return buf[:n], nil
		}
	}
	return nil, err
}

// ask sends msg and returns the id of the backend that answered.
func ask(t testing.TB, c *net.UDPConn, msg string) string {
	t.Helper()
	reply, err := exchange(c, []byte(msg), 2*time.Second, 5)
	if err != nil {
		t.Fatalf("%s: no reply to %q: %v", c.LocalAddr(), msg, err)
	}
	id, rest, ok := strings.Cut(string(reply), " ")
	if !ok || rest != msg {
		t.Fatalf("%s: reply %q to %q", c.LocalAddr(), reply, msg)
	}
	return id
}

// value returns the metric name with the given labels, or -1 if absent.
func value(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if matches(m, labels) {
				switch {
				case m.Counter != nil:
					return m.Counter.GetValue()
				case m.Gauge != nil:
					return m.Gauge.GetValue()
				}
			}
		}
	}
	return -1
}

func matches(m *dto.Metric, labels map[string]string) bool {
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := labels[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(labels)
}

func dropped(t testing.TB, h *harness, reason string) float64 {
	return value(t, h.reg, "tierlb_udp_dropped_total", map[string]string{"service": "dns", "reason": reason})
}
