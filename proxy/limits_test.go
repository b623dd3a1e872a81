package proxy

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sys/unix"

	"github.com/tierlb/tierlb/internal/testkit"
)

// metricsService starts a service with its own registry.
func metricsService(t *testing.T, cfg Config, pools Pools) (*Service, *Metrics) {
	t.Helper()
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Name, cfg.Listen = "lim", "127.0.0.1:0"
	s, err := NewService(cfg, pools, Options{Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	serveService(t, s)
	return s, m
}

func rejected(m *Metrics, reason string) float64 {
	return m.rejectedCount("lim", reason)
}

// TestMaxConns: the connection over the limit is closed at once and
// counted; once one closes, a new one is served again.
func TestMaxConns(t *testing.T) {
	be := startBackend(t, echo)
	s, m := metricsService(t, Config{MaxConns: 2, ZeroCopy: true}, staticSet(t, be.addr()))
	var open []io.ReadWriteCloser
	for range 2 {
		c := dial(t, s)
		roundTrip(t, c, "x")
		open = append(open, c)
	}
	if err := refusal(s); !errors.Is(err, unix.ECONNRESET) {
		t.Fatalf("connection over max_conns ended with %v, want a reset", err)
	}
	if got := rejected(m, RejectMaxConns); got != 1 {
		t.Errorf("rejected max_conns = %v, want 1", got)
	}
	open[0].Close()
	testkit.Eventually(t, 5*time.Second, "a slot frees", func() bool { return s.Active() == 1 })
	roundTrip(t, dial(t, s), "y")
	if got := m.acceptedCount("lim"); got != 4 {
		t.Errorf("accepted = %v, want 4", got)
	}
}

// TestAllow: clients outside the allow list are refused; the listed ones
// are served.
func TestAllow(t *testing.T) {
	be := startBackend(t, echo)
	tests := []struct {
		name  string
		allow []netip.Prefix
		ok    bool
	}{
		{"empty allows all", nil, true},
		{"listed", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.0/8")}, true},
		{"not listed", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, m := metricsService(t, Config{Allow: tt.allow}, staticSet(t, be.addr()))
			if tt.ok {
				roundTrip(t, dial(t, s), "allowed")
				return
			}
			if err := refusal(s); !errors.Is(err, unix.ECONNRESET) {
				t.Fatalf("refused client read ended with %v, want a reset", err)
			}
			if got := rejected(m, RejectNotAllowed); got != 1 {
				t.Errorf("rejected not_allowed = %v, want 1", got)
			}
		})
	}
}

// TestRejectReasonsAtZero: every reason is exported before any refusal.
func TestRejectReasonsAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewService(Config{Name: "zero"}, staticSet(t), Options{Metrics: m}); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(m, "tierlb_connections_rejected_total"); n != len(rejectReasons()) {
		t.Errorf("rejected series = %d, want %d", n, len(rejectReasons()))
	}
	// A second NewMetrics on the same registry reuses the collectors.
	m2, err := NewMetrics(reg)
	if err != nil {
		t.Fatalf("second NewMetrics: %v", err)
	}
	if m2 != m {
		t.Error("second NewMetrics did not reuse the registered collector")
	}
}

// refusal connects and returns how the connection ended: the RST of a
// refused connection may already arrive during connect on loopback.
func refusal(s *Service) error {
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		return err
	}
	defer c.Close()
	return readEnd(c, 5*time.Second)
}

// roundTrip writes msg and expects it echoed.
func roundTrip(t *testing.T, c io.ReadWriter, msg string) {
	t.Helper()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo: got %q, err %v", buf, err)
	}
}
