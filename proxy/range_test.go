package proxy

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tierlb/tierlb/internal/listenaddr"
	"github.com/tierlb/tierlb/internal/testkit"
)

// TestPortRange: a service on 20 ports accepts on every one of them, and
// the PROXY header its backend gets and its access log name the port the
// client connected to.
func TestPortRange(t *testing.T) {
	// The backend answers with the destination port of the PROXY header.
	be := startBackend(t, func(c net.Conn) {
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Fields(line) // PROXY TCP4 src dst sport dport
		if len(f) == 6 {
			fmt.Fprintf(c, "%s\n", f[5])
		}
	})
	al := &accessLog{}
	var s *Service
	addr := testkit.ListenRange(t, 20, func(addr string) error {
		var err error
		s, err = NewService(Config{Name: "range", Listen: addr, ProxyProtocol: "v1", AccessLog: true},
			staticSet(t, be.addr()), Options{Loops: testLoops(t, 2), AccessLog: slog.New(al)})
		if err != nil {
			t.Fatal(err)
		}
		return s.Listen()
	})
	serveService(t, s)
	addrs, err := listenaddr.Expand(addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		c, err := net.DialTimeout("tcp", a, 5*time.Second)
		if err != nil {
			t.Fatalf("port %s of the range: %v", a, err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		got, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		_, port, _ := net.SplitHostPort(a)
		if err != nil || strings.TrimSpace(got) != port {
			t.Errorf("through %s the backend saw destination port %q (%v), want %s", a, got, err, port)
		}
	}
	testkit.Eventually(t, 5*time.Second, "a log line per connection", func() bool { return len(al.ends()) == len(addrs) })
	seen := map[int64]bool{}
	al.mu.Lock()
	for _, line := range al.lines {
		if p, ok := line["port"].(int64); ok {
			seen[p] = true
		}
	}
	al.mu.Unlock()
	for _, a := range addrs {
		_, port, _ := net.SplitHostPort(a)
		if p, _ := strconv.ParseInt(port, 10, 64); !seen[p] {
			t.Errorf("no access log line with port %d; ports logged: %v", p, seen)
		}
	}
}

// TestPortRangeBindFailure: when one port of a range is taken, Listen
// fails naming it and leaves none of the others bound.
func TestPortRangeBindFailure(t *testing.T) {
	var taken net.Listener
	addr := testkit.ListenRange(t, 5, func(addr string) error {
		addrs, err := listenaddr.Expand(addr)
		if err != nil {
			t.Fatal(err)
		}
		taken, err = net.Listen("tcp", addrs[3])
		return err
	})
	defer taken.Close()
	s, err := NewService(Config{Name: "range", Listen: addr}, staticSet(t, "127.0.0.1:1"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Listen()
	if err == nil || !strings.Contains(err.Error(), taken.Addr().String()) {
		t.Fatalf("Listen = %v, want an error naming %s", err, taken.Addr())
	}
	addrs, _ := listenaddr.Expand(addr)
	for _, a := range addrs[:3] {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Errorf("%s still bound after the failed Listen: %v", a, err)
			continue
		}
		ln.Close()
	}
}
