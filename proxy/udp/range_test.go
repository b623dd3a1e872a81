package udp

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/tierlb/tierlb/backends"
	"github.com/tierlb/tierlb/internal/listenaddr"
	"github.com/tierlb/tierlb/internal/testkit"
)

// TestPortRange: a service on 20 ports answers on every one of them,
// through its loops, with one socket per port; each port's client gets
// its own session, and the access log names the port it sent to.
func TestPortRange(t *testing.T) {
	be := startBackend(t, "udp4", "127.0.0.1:0", "a", false)
	log := &accessLog{}
	set := testLoops(t, 2)
	var svc *Service
	addr := testkit.ListenRange(t, 20, func(addr string) error {
		var err error
		svc, err = NewService(Config{Name: "rtp", Listen: addr, AccessLog: true, Responses: 1},
			newSet(t, backends.RoundRobin, be), Options{Loops: set, AccessLog: slog.New(slog.NewJSONHandler(log, nil))})
		if err != nil {
			t.Fatal(err)
		}
		return svc.Listen()
	})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- svc.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-served
		sctx, scancel := context.WithTimeout(context.Background(), time.Second)
		defer scancel()
		svc.Shutdown(sctx)
	})
	svc.mu.Lock()
	socks := len(svc.lns)
	svc.mu.Unlock()
	if socks != 20 {
		t.Errorf("%d sockets for 20 ports on 2 loops, want one per port", socks)
	}
	addrs, err := listenaddr.Expand(addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 512)
	for _, a := range addrs {
		to, _ := net.ResolveUDPAddr("udp4", a)
		msg := "to " + a
		var got string
		for range 20 {
			c.WriteToUDP([]byte(msg), to)
			c.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
			n, from, err := c.ReadFromUDP(buf)
			if err == nil && from.Port == to.Port {
				got = string(buf[:n])
				break
			}
		}
		if got != "a "+msg {
			t.Errorf("through %s: answer %q, want %q from that port", a, got, "a "+msg)
		}
	}
	// responses: 1 ends each session at its answer, logged with its port.
	testkit.Eventually(t, 5*time.Second, "a log line per port", func() bool { return len(log.lines(t)) >= len(addrs) })
	seen := map[int]bool{}
	for _, line := range log.lines(t) {
		if p, ok := line["port"].(float64); ok {
			seen[int(p)] = true
		}
	}
	for _, a := range addrs {
		_, port, _ := net.SplitHostPort(a)
		if p, _ := strconv.Atoi(port); !seen[p] {
			t.Errorf("no access log line with port %d; ports logged: %v", p, seen)
		}
	}
}
