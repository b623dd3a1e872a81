//go:build linux

package proxy

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tierlb/tierlb/internal/testkit"
)

// dialFrom connects to s from a given loopback address.
func dialFrom(t *testing.T, s *Service, from string) *net.TCPConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// refusalFrom is refusal from a given loopback address: how a connection
// ends that the service should refuse. The refusal's RST may come before
// the dial returns.
func refusalFrom(s *Service, from string) error {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", s.Addr().String())
	if err != nil {
		return err
	}
	defer c.Close()
	return readEnd(c, 5*time.Second)
}

// clientsCounted is how many client addresses hold a per-client count.
func clientsCounted(s *Service) int {
	s.clients.mu.Lock()
	defer s.clients.mu.Unlock()
	return len(s.clients.n)
}

// TestMaxConnsPerClient: a client address at its limit is refused its next
// connection at once and the refusal counted, while another address is
// served; a closed connection frees its place. Behind a trusted proxy the
// limit applies to the address the PROXY header names.
func TestMaxConnsPerClient(t *testing.T) {
	be := startBackend(t, echo)
	s, m := metricsService(t, Config{MaxConnsPerClient: 2, ZeroCopy: true,
		AcceptProxyProtocol: []netip.Prefix{netip.MustParsePrefix("127.0.0.3/32")}}, staticSet(t, be.addr()))
	var open []*net.TCPConn
	for range 2 {
		c := dialFrom(t, s, "127.0.0.1")
		roundTrip(t, c, "x")
		open = append(open, c)
	}
	if err := refusalFrom(s, "127.0.0.1"); !errors.Is(err, unix.ECONNRESET) {
		t.Fatalf("connection over max_conns_per_client ended with %v, want a reset", err)
	}
	if got := rejected(m, RejectMaxConnsPerClient); got != 1 {
		t.Errorf("rejected max_conns_per_client = %v, want 1", got)
	}
	roundTrip(t, dialFrom(t, s, "127.0.0.2"), "another client")
	open[0].Close()
	testkit.Eventually(t, 5*time.Second, "a place freed", func() bool { return s.Active() == 2 })
	roundTrip(t, dialFrom(t, s, "127.0.0.1"), "y")

	// Two clients behind the trusted proxy at 127.0.0.3.
	proxied := func(src string) *net.TCPConn {
		c := dialFrom(t, s, "127.0.0.3")
		if _, err := io.WriteString(c, "PROXY TCP4 "+src+" 127.0.0.1 40000 80\r\n"); err != nil {
			t.Fatal(err)
		}
		return c
	}
	a1, a2 := proxied("10.9.0.1"), proxied("10.9.0.1")
	roundTrip(t, a1, "a1")
	roundTrip(t, a2, "a2")
	if err := readEnd(proxied("10.9.0.1"), 5*time.Second); !errors.Is(err, unix.ECONNRESET) {
		t.Fatalf("third connection of 10.9.0.1 through the proxy ended with %v, want a reset", err)
	}
	roundTrip(t, proxied("10.9.0.2"), "b1")
	if got := rejected(m, RejectMaxConnsPerClient); got != 2 {
		t.Errorf("rejected max_conns_per_client = %v, want 2", got)
	}
	for _, c := range append(open, a1, a2) {
		c.Close()
	}
}

// TestMaxConnsPerClientForgets: once every connection has closed, no
// client address is left in the counts.
func TestMaxConnsPerClientForgets(t *testing.T) {
	be := startBackend(t, echo)
	s, _ := metricsService(t, Config{MaxConnsPerClient: 5, ZeroCopy: true}, staticSet(t, be.addr()))
	for _, from := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.1"} {
		c := dialFrom(t, s, from)
		roundTrip(t, c, "x")
		c.Close()
	}
	testkit.Eventually(t, 5*time.Second, "the counts empty", func() bool { return s.Active() == 0 && clientsCounted(s) == 0 })
}

// TestDeferDial: with defer_dial a silent client costs the backend
// nothing; its first bytes start the dial and reach the backend; a client
// that stays silent past first_data is closed and counted.
func TestDeferDial(t *testing.T) {
	be := startBackend(t, echo)
	s, m := metricsService(t, Config{DeferDial: true, ZeroCopy: true, Timeouts: Timeouts{FirstData: 300 * time.Millisecond}},
		staticSet(t, be.addr()))
	talker := dial(t, s)
	testkit.Eventually(t, 5*time.Second, "the client accepted", func() bool { return s.Active() == 1 })
	if testkit.Within(100*time.Millisecond, func() bool { return be.accepted() > 0 }) {
		t.Fatal("the backend was dialed for a client that has sent nothing")
	}
	roundTrip(t, talker, "hello")
	if n := be.accepted(); n != 1 {
		t.Errorf("backend accepted %d connections, want 1", n)
	}

	silent := dial(t, s)
	began := time.Now()
	if err := readEnd(silent, 10*time.Second); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("a silent client was still open 10s after first_data (300ms)")
	}
	// The loop's clock is read once per wakeup, so the deadline may run
	// from a little before the accept.
	if d := time.Since(began); d < 200*time.Millisecond {
		t.Errorf("silent client closed after %s, long before first_data (300ms)", d)
	}
	if got := rejected(m, RejectNoClientData); got != 1 {
		t.Errorf("rejected no_client_data = %v, want 1", got)
	}
	if n := be.accepted(); n != 1 {
		t.Errorf("backend accepted %d connections, want only the talker's", n)
	}
}

// TestDeferDialAfterProxyHeader: bytes that came with a trusted client's
// PROXY header start the dial at once; a header alone waits for more.
func TestDeferDialAfterProxyHeader(t *testing.T) {
	be := startBackend(t, echo)
	s, _ := metricsService(t, Config{DeferDial: true, ZeroCopy: true,
		AcceptProxyProtocol: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, staticSet(t, be.addr()))
	c := dial(t, s)
	if _, err := io.WriteString(c, "PROXY TCP4 10.9.0.1 127.0.0.1 40000 80\r\nping"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("header and data in one write: got %q, %v", buf, err)
	}

	h := dial(t, s)
	if _, err := io.WriteString(h, "PROXY TCP4 10.9.0.2 127.0.0.1 40000 80\r\n"); err != nil {
		t.Fatal(err)
	}
	if testkit.Within(100*time.Millisecond, func() bool { return be.accepted() > 1 }) {
		t.Fatal("the backend was dialed for a client that has sent only its PROXY header")
	}
	roundTrip(t, h, "pong")
}
