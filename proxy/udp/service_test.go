//go:build linux

package udp

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tierlb/tierlb/backends"
	"github.com/tierlb/tierlb/internal/testkit"
)

func TestRoundRobinOverSessions(t *testing.T) {
	for _, loops := range []int{1, 2} {
		t.Run(fmt.Sprintf("loops=%d", loops), func(t *testing.T) {
			a := startBackend(t, "udp4", "127.0.0.1:0", "a", false)
			b := startBackend(t, "udp4", "127.0.0.1:0", "b", false)
			c := startBackend(t, "udp4", "127.0.0.1:0", "c", false)
			h := serve(t, Config{}, newSet(t, backends.RoundRobin, a, b, c), loops)
			var got []string
			for i := range 30 {
				cl := dial(t, h.addr())
				got = append(got, ask(t, cl, fmt.Sprintf("q%d", i)))
				// The session stays on its backend.
				if again := ask(t, cl, "again"); again != got[i] {
					t.Fatalf("session %d moved from %s to %s", i, got[i], again)
				}
			}
			want := strings.Repeat("a b c ", 10)
			if s := strings.Join(got, " ") + " "; s != want {
				t.Fatalf("sessions went to\n%s\nwant\n%s", s, want)
			}
			if n := h.svc.Active(); n != 30 {
				t.Fatalf("active sessions %d, want 30", n)
			}
			for _, id := range []string{"a", "b", "c"} {
				labels := map[string]string{"service": "dns", "backend": id}
				if v := value(t, h.reg, "tierlb_udp_sessions_total", labels); v != 10 {
					t.Errorf("sessions_total{%s} = %v, want 10", id, v)
				}
				if v := value(t, h.reg, "tierlb_udp_sessions_active", labels); v != 10 {
					t.Errorf("sessions_active{%s} = %v, want 10", id, v)
				}
				labels["direction"] = "to_backend"
				if v := value(t, h.reg, "tierlb_udp_datagrams_total", labels); v != 20 {
					t.Errorf("datagrams_total{%s,to_backend} = %v, want 20", id, v)
				}
			}
		})
	}
}

func TestPolicies(t *testing.T) {
	tests := []struct {
		name   string
		policy backends.Policy
		check  func(t *testing.T, got []string)
	}{
		{"leastconn", backends.LeastConn, func(t *testing.T, got []string) {
			counts := map[string]int{}
			for _, id := range got {
				counts[id]++
			}
			if counts["a"] != 4 || counts["b"] != 4 || counts["c"] != 4 {
				t.Fatalf("leastconn spread sessions %v, want 4 each", counts)
			}
		}},
		{"sourcehash", backends.SourceHash, func(t *testing.T, got []string) {
			for _, id := range got {
				if id != got[0] {
					t.Fatalf("sourcehash sent one client IP to %v", got)
				}
			}
		}},
		{"random2", backends.Random2, func(t *testing.T, got []string) {
			for _, id := range got {
				if id != "a" && id != "b" && id != "c" {
					t.Fatalf("session on %q", id)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := startBackend(t, "udp4", "127.0.0.1:0", "a", false)
			b := startBackend(t, "udp4", "127.0.0.1:0", "b", false)
			c := startBackend(t, "udp4", "127.0.0.1:0", "c", false)
			h := serve(t, Config{}, newSet(t, tt.policy, a, b, c), 1)
			var got []string
			for i := range 12 {
				got = append(got, ask(t, dial(t, h.addr()), fmt.Sprintf("q%d", i)))
			}
			tt.check(t, got)
		})
	}
}

func TestRepliesReachTheirClients(t *testing.T) {
	a := startBackend(t, "udp4", "127.0.0.1:0", "a", false)
	b := startBackend(t, "udp4", "127.0.0.1:0", "b", false)
	h := serve(t, Config{}, newSet(t, backends.RoundRobin, a, b), 2)
	const clients = 1000
	conns := make([]*net.UDPConn, clients)
	for i := range conns {
		conns[i] = dial(t, h.addr())
	}
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := fmt.Sprintf("client-%d-%s", i, c.LocalAddr())
			// Loopback drops nothing, but a loaded machine may overflow a
			// socket buffer: resend after a generous wait.
			reply, err := exchange(c, []byte(msg), 3*time.Second, 5)
			if err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
				return
			}
			if _, rest, _ := strings.Cut(string(reply), " "); rest != msg {
				errs <- fmt.Errorf("client %d got %q", i, reply)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := h.svc.Active(); n != clients {
		t.Fatalf("active sessions %d, want %d", n, clients)
	}
}

func TestLargestDatagramsIntact(t *testing.T) {
	tests := []struct {
		name, network, host string
		size                int
	}{
		{"ipv4", "udp4", "127.0.0.1", 65507},
		{"ipv6", "udp6", "[::1]", 65527},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := startBackendOrSkip(t, tt.network, tt.host+":0", "echo", true)
			h := serve(t, Config{Listen: tt.host + ":0"}, newSet(t, backends.RoundRobin, be), 1)
			c := dial(t, h.addr())
			msg := make([]byte, tt.size)
			for i := range msg {
				msg[i] = byte(i * 7)
			}
			reply, err := exchange(c, msg, 3*time.Second, 3)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(reply, msg) {
				t.Fatalf("reply of %d bytes, want the %d sent back intact", len(reply), len(msg))
			}
			bs := newSetBackends(h)
			up, down := bs[0].Bytes()
			if up != uint64(tt.size) || down != uint64(tt.size) {
				t.Fatalf("backend bytes %d to backend, %d to client; want %d each", up, down, tt.size)
			}
		})
	}
}

// newSetBackends returns the backends of the harness's service.
func newSetBackends(h *harness) []*backends.Backend { return h.svc.pools.Backends() }

func startBackendOrSkip(t *testing.T, network, addr, id string, echo bool) *testBackend {
	t.Helper()
	if network == "udp6" {
		c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
		if err != nil {
			t.Skipf("no IPv6 loopback: %v", err)
		}
		c.Close()
	}
	return startBackend(t, network, addr, id, echo)
}

func TestWildcardListenerAnswersFromTheAddressAsked(t *testing.T) {
	be := startBackend(t, "udp4", "127.0.0.1:0", "a", false)
	h := serve(t, Config{Listen: "0.0.0.0:0"}, newSet(t, backends.RoundRobin, be), 1)
	port := h.svc.Addr().(*net.UDPAddr).Port
	// A connected client takes replies only from the address it sent to;
	// without pktinfo the reply to 127.0.0.2 would leave from 127.0.0.1.
	for _, host := range []string{"127.0.0.1", "127.0.0.2"} {
		c := dial(t, net.JoinHostPort(host, fmt.Sprint(port)))
		if id := ask(t, c, "hello "+host); id != "a" {
			t.Fatalf("reply from %q", id)
		}
	}
}

func TestBackendKilledMidSession(t *testing.T) {
	a := startBackend(t, "udp4", "127.0.0.1:0", "a", false)
	b := startBackend(t, "udp4", "127.0.0.1:0", "b", false)
	set := newSet(t, backends.RoundRobin, a, b)
	h := serve(t, Config{}, set, 1)
	c := dial(t, h.addr())
	if id := ask(t, c, "first"); id != "a" {
		t.Fatalf("first session on %s, want a", id)
	}
	a.stop()
	// The next datagram draws an ICMP port unreachable; the one after it
	// goes to b.
	reply, err := exchange(c, []byte("second"), 200*time.Millisecond, 50)
	if err != nil {
		t.Fatal(err)
	}
	if string(reply) != "b second" {
		t.Fatalf("after a died the session answered %q, want b's answer", reply)
	}
	refused := set.Backend("a").ConnectErrors()[backends.DialRefused]
	if refused < 1 {
		t.Fatalf("refused datagrams counted on a: %d, want at least 1", refused)
	}
	if v := value(t, h.reg, "tierlb_udp_sessions_active", map[string]string{"service": "dns", "backend": "b"}); v != 1 {
		t.Fatalf("sessions_active{b} = %v, want 1", v)
	}
	if v := value(t, h.reg, "tierlb_udp_sessions_active", map[string]string{"service": "dns", "backend": "a"}); v != 0 {
		t.Fatalf("sessions_active{a} = %v, want 0", v)
	}
	if id := ask(t, c, "third"); id != "b" {
		t.Fatalf("session went back to %s", id)
	}
}

func TestResponsesEndSessions(t *testing.T) {
	a := startBackend(t, "udp4", "127.0.0.1:0", "a", false)
	b := startBackend(t, "udp4", "127.0.0.1:0", "b", false)
	h := serve(t, Config{Responses: 1}, newSet(t, backends.RoundRobin, a, b), 1)
	c := dial(t, h.addr())
	var got []string
	for i := range 4 {
		got = append(got, ask(t, c, fmt.Sprintf("query %d", i)))
		testkit.Eventually(t, 5*time.Second, "the session to end after its reply", func() bool {
			return h.svc.Active() == 0
		})
	}
	// Each query was a session of its own, so round robin alternates.
	if s := strings.Join(got, ""); s != "abab" {
		t.Fatalf("queries went to %s, want abab", s)
	}
	lines := h.log.lines(t)
	if len(lines) != 4 {
		t.Fatalf("%d access log lines, want 4: %v", len(lines), lines)
	}
	for _, l := range lines {
		if l["end"] != EndResponses || l["datagrams_to_backend"] != float64(1) || l["datagrams_to_client"] != float64(1) {
			t.Fatalf("access log line %v", l)
		}
	}
}

func TestMaxSessionsDropsCounted(t *testing.T) {
	t.Run("full", func(t *testing.T) {
		// A backend that never answers holds its sessions open.
		h := serve(t, Config{MaxSessions: 2}, newSet(t, backends.RoundRobin, startSilent(t)), 2)
		if v := dropped(t, h, DropMaxSessions); v != 0 {
			t.Fatalf("dropped{max_sessions} = %v before any datagram, want 0", v)
		}
		for range 2 {
			if _, err := dial(t, h.addr()).Write([]byte("hold")); err != nil {
				t.Fatal(err)
			}
		}
		testkit.Eventually(t, 5*time.Second, "two sessions", func() bool { return h.svc.Active() == 2 })
		third := dial(t, h.addr())
		for range 3 {
			if _, err := third.Write([]byte("over")); err != nil {
				t.Fatal(err)
			}
		}
		testkit.Eventually(t, 5*time.Second, "three drops", func() bool { return dropped(t, h, DropMaxSessions) == 3 })
		// What the status page's history reads: every reason, per service.
		drops := map[string]uint64{}
		h.m.Dropped(drops)
		if drops["dns"] != 3 || len(drops) != 1 {
			t.Fatalf("Dropped gave %v, want dns: 3", drops)
		}
		if n := h.svc.Active(); n != 2 {
			t.Fatalf("active sessions %d, want 2", n)
		}
	})
	t.Run("slots freed", func(t *testing.T) {
		// With responses: 1, finished sessions free their slots.
		a := startBackend(t, "udp4", "127.0.0.1:0", "a", false)
		h := serve(t, Config{MaxSessions: 1, Responses: 1}, newSet(t, backends.RoundRobin, a), 1)
		for i := range 5 {
			ask(t, dial(t, h.addr()), fmt.Sprint("q", i))
			testkit.Eventually(t, 5*time.Second, "the session to end", func() bool { return h.svc.Active() == 0 })
		}
		if v := dropped(t, h, DropMaxSessions); v != 0 {
			t.Fatalf("dropped{max_sessions} = %v, want 0", v)
		}
	})
}

// startSilent returns a backend that reads and never answers.
func startSilent(t *testing.T) *testBackend {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	tb := &testBackend{id: "silent", conn: c, done: make(chan struct{})}
	go func() {
		defer close(tb.done)
		buf := make([]byte, 1<<16)
		for {
			if _, err := c.Read(buf); err != nil && strings.Contains(err.Error(), "closed") {
				return
			}
		}
	}()
	t.Cleanup(tb.stop)
	return tb
}

func TestSessionTimeout(t *testing.T) {
	a := startBackend(t, "udp4", "127.0.0.1:0", "a", false)
	h := serve(t, Config{SessionTimeout: 100 * time.Millisecond}, newSet(t, backends.RoundRobin, a), 1)
	ask(t, dial(t, h.addr()), "hello")
	testkit.Eventually(t, 5*time.Second, "the session to time out", func() bool { return h.svc.Active() == 0 })
	// The session leaves the count before its line is written.
	testkit.Eventually(t, 5*time.Second, "the session's access log line", func() bool { return len(h.log.lines(t)) > 0 })
	lines := h.log.lines(t)
	if len(lines) != 1 || lines[0]["end"] != EndIdleTimeout || lines[0]["backend"] != "a" ||
		lines[0]["bytes_to_backend"] != float64(5) || lines[0]["bytes_to_client"] != float64(7) {
		t.Fatalf("access log %v", lines)
	}
}

func TestDrainingBackendKeepsItsSessions(t *testing.T) {
	a := startBackend(t, "udp4", "127.0.0.1:0", "a", false)
	b := startBackend(t, "udp4", "127.0.0.1:0", "b", false)
	set := newSet(t, backends.RoundRobin, a, b)
	h := serve(t, Config{}, set, 1)
	old := dial(t, h.addr())
	if id := ask(t, old, "before"); id != "a" {
		t.Fatalf("first session on %s", id)
	}
	set.Backend("a").SetAdminState(backends.StateDraining)
	for i := range 4 {
		if id := ask(t, dial(t, h.addr()), fmt.Sprint("new", i)); id != "b" {
			t.Fatalf("new session on draining %s", id)
		}
	}
	if id := ask(t, old, "after"); id != "a" {
		t.Fatalf("old session moved off its draining backend to %s", id)
	}
	// A backend that goes down takes its sessions along to another one.
	set.Backend("a").SetAdminState(backends.StateUp)
	set.Backend("a").SetHealth(false, "test: down")
	if id := ask(t, old, "down"); id != "b" {
		t.Fatalf("session stayed on down backend %s", id)
	}
}

func TestReconfigureKeepsSessions(t *testing.T) {
	a := startBackend(t, "udp4", "127.0.0.1:0", "a", false)
	b := startBackend(t, "udp4", "127.0.0.1:0", "b", false)
	h := serve(t, Config{}, newSet(t, backends.RoundRobin, a, b), 1)
	c := dial(t, h.addr())
	first := ask(t, c, "one")
	h.svc.Reconfigure(Config{Name: "dns", Listen: h.addr(), SessionTimeout: time.Minute, MaxSessions: 10, AccessLog: true})
	for i := range 3 {
		if id := ask(t, c, fmt.Sprint("after", i)); id != first {
			t.Fatalf("session moved from %s to %s on reconfigure", first, id)
		}
	}
	h.svc.Reconfigure(Config{Name: "dns", Responses: -1})
	if id := ask(t, c, "rejected"); id != first {
		t.Fatalf("session moved from %s to %s", first, id)
	}
}

func TestShutdown(t *testing.T) {
	t.Run("sessions run out", func(t *testing.T) {
		a := startBackend(t, "udp4", "127.0.0.1:0", "a", false)
		h := serve(t, Config{SessionTimeout: 300 * time.Millisecond}, newSet(t, backends.RoundRobin, a), 2)
		c := dial(t, h.addr())
		ask(t, c, "open")
		done := make(chan struct{})
		go func() {
			defer close(done)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_ = h.svc.Shutdown(ctx)
		}()
		// While draining, the open session is served and new ones are not.
		testkit.Eventually(t, 5*time.Second, "a new client to be dropped", func() bool {
			_, _ = dial(t, h.addr()).Write([]byte("late"))
			return dropped(t, h, DropDraining) >= 1
		})
		<-done
		// Late clients may have started sessions before the drain began;
		// every session ran out by itself.
		var mine int
		for _, l := range h.log.lines(t) {
			if l["end"] != EndIdleTimeout {
				t.Fatalf("access log line %v", l)
			}
			if l["client"] == c.LocalAddr().String() {
				mine++
			}
		}
		if mine != 1 {
			t.Fatalf("%d access log lines for the open session, want 1", mine)
		}
	})
	t.Run("cut at the deadline", func(t *testing.T) {
		a := startBackend(t, "udp4", "127.0.0.1:0", "a", false)
		h := serve(t, Config{SessionTimeout: time.Hour}, newSet(t, backends.RoundRobin, a), 2)
		ask(t, dial(t, h.addr()), "open")
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_ = h.svc.Shutdown(ctx)
		if n := h.svc.Active(); n != 0 {
			t.Fatalf("%d sessions after shutdown", n)
		}
		lines := h.log.lines(t)
		if len(lines) != 1 || lines[0]["end"] != EndDrain {
			t.Fatalf("access log %v", lines)
		}
		// The port is free again.
		c, err := net.ListenPacket("udp", h.addr())
		if err != nil {
			t.Fatalf("rebind %s after shutdown: %v", h.addr(), err)
		}
		c.Close()
	})
}

func TestMetricsAtZero(t *testing.T) {
	a := startBackend(t, "udp4", "127.0.0.1:0", "a", false)
	h := serve(t, Config{}, newSet(t, backends.RoundRobin, a), 1)
	for _, r := range dropReasons {
		if v := dropped(t, h, r); v != 0 {
			t.Errorf("dropped{%s} = %v, want 0", r, v)
		}
	}
	labels := map[string]string{"service": "dns", "backend": "a"}
	for _, name := range []string{"tierlb_udp_sessions_active", "tierlb_udp_sessions_total"} {
		if v := value(t, h.reg, name, labels); v != 0 {
			t.Errorf("%s = %v, want 0", name, v)
		}
	}
	for _, dir := range []string{"to_backend", "to_client"} {
		if v := value(t, h.reg, "tierlb_udp_datagrams_total", map[string]string{"service": "dns", "backend": "a", "direction": dir}); v != 0 {
			t.Errorf("datagrams_total{%s} = %v, want 0", dir, v)
		}
	}
}

func TestNoBackendDropsCounted(t *testing.T) {
	set := backends.NewSet("dns", backends.RoundRobin, backends.SetOptions{})
	t.Cleanup(set.Close)
	h := serve(t, Config{}, set, 1)
	c := dial(t, h.addr())
	for range 2 {
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, 5*time.Second, "two drops", func() bool { return dropped(t, h, DropNoBackend) == 2 })
}
