//go:build linux

package udp

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/tierlb/tierlb/backends"
	"github.com/tierlb/tierlb/internal/testkit"
)

// sourceBackend answers each datagram with "s <datagram>" and records the
// address it came from; sendLate sends to the first datagram's address
// on command.
type sourceBackend struct {
	*testBackend
	mu    sync.Mutex
	from  []netip.AddrPort
	first netip.AddrPort
}

func startSourceBackend(t *testing.T) *sourceBackend {
	t.Helper()
	sb := &sourceBackend{}
	sb.testBackend = startBackendSeeing(t, "udp4", "127.0.0.1:0", "s", false, func(from netip.AddrPort) {
		sb.mu.Lock()
		defer sb.mu.Unlock()
		if len(sb.from) == 0 {
			sb.first = from
		}
		sb.from = append(sb.from, from)
	})
	return sb
}

// sendLate sends a datagram to the address the first query came from, as
// a backend's reply beyond udp.responses would go.
func (sb *sourceBackend) sendLate(t *testing.T, msg string) {
	t.Helper()
	sb.mu.Lock()
	to := sb.first
	sb.mu.Unlock()
	if _, err := sb.conn.WriteToUDPAddrPort([]byte(msg), to); err != nil {
		t.Fatal(err)
	}
}

func (sb *sourceBackend) sources() map[netip.AddrPort]int {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	m := map[netip.AddrPort]int{}
	for _, a := range sb.from {
		m[a]++
	}
	return m
}

// askOnce is one query of a new client, its session ended by its reply.
func askOnce(t *testing.T, h *harness, msg string) {
	t.Helper()
	if id := ask(t, dial(t, h.addr()), msg); id != "s" {
		t.Fatalf("answered by %q", id)
	}
	testkit.Eventually(t, 5*time.Second, "the session to end after its reply", func() bool {
		return h.svc.Active() == 0
	})
}

// Sessions that end with their replies hand their socket to the next:
// the backend sees one source address for every client.
func TestSessionsReuseTheSocketOfEndedOnes(t *testing.T) {
	sb := startSourceBackend(t)
	h := serve(t, Config{Responses: 1}, newSet(t, backends.RoundRobin, sb.testBackend), 1)
	for i := range 5 {
		askOnce(t, h, fmt.Sprintf("q%d", i))
	}
	if src := sb.sources(); len(src) != 1 {
		t.Fatalf("the backend saw %d source addresses for 5 sessions, want 1: %v", len(src), src)
	}
	lines := h.log.lines(t)
	if len(lines) != 5 {
		t.Fatalf("%d access log lines, want 5", len(lines))
	}
	for _, l := range lines {
		if l["end"] != EndResponses {
			t.Fatalf("access log line %v", l)
		}
	}
	if n := value(t, h.reg, "tierlb_udp_sessions_total", map[string]string{"service": "dns", "backend": "s"}); n != 5 {
		t.Fatalf("sessions_total %v, want 5", n)
	}
	// A session that timed out is not sure to have had all its replies:
	// its socket is closed, and the next session gets a new one.
	h2 := serve(t, Config{SessionTimeout: 100 * time.Millisecond}, newSet(t, backends.RoundRobin, sb.testBackend), 1)
	before := len(sb.sources())
	for i := range 2 {
		if id := ask(t, dial(t, h2.addr()), fmt.Sprintf("t%d", i)); id != "s" {
			t.Fatalf("answered by %q", id)
		}
		testkit.Eventually(t, 5*time.Second, "the session to time out", func() bool { return h2.svc.Active() == 0 })
	}
	if n := len(sb.sources()) - before; n != 2 {
		t.Fatalf("two sessions that timed out came from %d new source addresses, want 2", n)
	}
}

// A datagram that reaches a spare socket is dropped and counted, whether
// the loop hears of it while the socket is spare or finds it when the
// next session takes the socket; the next client gets only its own reply.
func TestLateRepliesNeverReachTheNextClient(t *testing.T) {
	sb := startSourceBackend(t)
	h := serve(t, Config{Responses: 1}, newSet(t, backends.RoundRobin, sb.testBackend), 1)
	askOnce(t, h, "first")

	// Heard while spare.
	sb.sendLate(t, "late while spare")
	testkit.Eventually(t, 5*time.Second, "the late reply to be dropped", func() bool {
		return dropped(t, h, DropLateReply) == 1
	})
	askOnce(t, h, "second") // ask fails on any reply but its own
	if src := sb.sources(); len(src) != 1 {
		t.Fatalf("the backend saw %d source addresses, want 1: %v", len(src), src)
	}

	// Found when the spare is taken: the loop is held while the late
	// reply arrives, so no event about it is served first.
	b := newSetBackends(h)[0]
	h.svc.call(func(l *listener) {
		sb.sendLate(t, "late when taken")
		time.Sleep(50 * time.Millisecond) // loopback delivers at once; this is margin
		fd, _, ok := l.takeSpare(b)
		if !ok {
			t.Error("no spare socket to take")
			return
		}
		l.lp.closeSocket(fd)
	})
	if n := dropped(t, h, DropLateReply); n != 2 {
		t.Fatalf("late_reply drops %v, want 2", n)
	}
}

// Spares are closed once idle for spareIdle, so a service that stops
// getting queries holds no sockets for them.
func TestSparesAreClosedWhenIdle(t *testing.T) {
	sb := startSourceBackend(t)
	h := serve(t, Config{Responses: 1}, newSet(t, backends.RoundRobin, sb.testBackend), 1)
	askOnce(t, h, "q")
	with := testkit.OpenFDs(t)
	spares := func() (n int) {
		h.svc.call(func(l *listener) { n = l.lp.spare.n })
		return n
	}
	if n := spares(); n != 1 {
		t.Fatalf("%d spare sockets after one session, want 1", n)
	}
	t0 := time.Now()
	testkit.Eventually(t, 10*time.Second, "the spare to be closed", func() bool { return spares() == 0 })
	if d := time.Since(t0); d < time.Duration(spareIdle)/2 {
		t.Fatalf("the spare was closed after %v, before it was idle for %v", d, time.Duration(spareIdle))
	}
	testkit.Eventually(t, 5*time.Second, "the spare's descriptor to be closed", func() bool { return testkit.OpenFDs(t) == with-1 })

	// Draining the listener closes its spares at once.
	askOnce(t, h, "again")
	n := -1
	h.svc.call(func(l *listener) {
		before := l.lp.spare.n
		l.drain()
		n = l.lp.spare.n
		if before != 1 {
			t.Errorf("%d spares before the drain, want 1", before)
		}
	})
	if n != 0 {
		t.Fatalf("%d spares after the drain, want 0", n)
	}
}

// spareCount is how many spare sockets the loops of h's service hold.
func spareCount(h *harness) int {
	n := 0
	h.svc.call(func(l *listener) { n += l.lp.spare.n })
	return n
}
