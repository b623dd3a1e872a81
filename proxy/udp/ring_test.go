//go:build linux

package udp

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tierlb/tierlb/backends"
	"github.com/tierlb/tierlb/internal/testkit"
	"github.com/tierlb/tierlb/proxy/internal/evloop"
)

// ringSubmitted is how many operations the process's rings were handed, as
// their fdinfo counts them.
func ringSubmitted(t testing.TB) int {
	t.Helper()
	total := 0
	for _, fd := range testkit.RingFDs(t) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", fd))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "SqTail:"); ok {
				n, _ := strconv.Atoi(strings.TrimSpace(v))
				total += n
			}
		}
	}
	return total
}

// ringLoops returns one loop, with io_uring as rings says, logging to log.
func ringLoops(t testing.TB, rings bool, log *slog.Logger) *evloop.Set {
	t.Helper()
	return testLoopsWith(t, 1, rings, log)
}

// needRing skips where the kernel offers no io_uring: the loops then use
// a syscall per session socket, which every other test covers.
func needRing(t *testing.T, set *evloop.Set) {
	t.Helper()
	el := set.Loops()[0]
	var ok bool
	el.Call(func() { ok = udpLoop(el).rio.ring != nil })
	if !ok {
		t.Skip("no io_uring in this kernel or sandbox")
	}
}

// askAll sends each client its message, all before reading any reply,
// so that the loop finds many sessions' datagrams in one wakeup, and
// checks that each client gets want(i) back. A client without its reply
// after a while sends again (loopback drops datagrams when a socket's
// buffer is full); a reply to an earlier message is skipped.
func askAll(cs []*net.UDPConn, msgs [][]byte, want func(i int) []byte) error {
	for i, c := range cs {
		if _, err := c.Write(msgs[i]); err != nil {
			return fmt.Errorf("client %d: %w", i, err)
		}
	}
	buf := make([]byte, 1<<16)
	for i, c := range cs {
		ok := false
		for try := 0; try < 10 && !ok; try++ {
			if try > 0 {
				c.Write(msgs[i])
			}
			c.SetReadDeadline(time.Now().Add(time.Second))
			for {
				n, err := c.Read(buf)
				if err != nil {
					break
				}
				if bytes.Equal(buf[:n], want(i)) {
					ok = true
					break
				}
			}
		}
		if !ok {
			return fmt.Errorf("client %d: no reply to its %d-byte message", i, len(msgs[i]))
		}
	}
	return nil
}

// message is client i's message of round r: n bytes, tagged so that a
// late reply to an earlier round is told apart.
func message(r, i, n int) []byte {
	tag := fmt.Sprintf("%d-%d-", r, i)
	b := bytes.Repeat([]byte{byte('a' + (r+i)%26)}, max(n, len(tag)))
	copy(b, tag)
	return b
}

// TestRingManyClients: more clients than a batch holds send at once,
// round after round, small datagrams and the largest mixed, with
// sessions that last and sessions that end at their reply; every reply
// reaches its client whole, and the ring carried the datagrams.
func TestRingManyClients(t *testing.T) {
	for _, tc := range []struct {
		name      string
		responses int
	}{{"sessions", 0}, {"a session per query", 1}} {
		t.Run(tc.name, func(t *testing.T) {
			a := startBackend(t, "udp4", "127.0.0.1:0", "a", true)
			set := ringLoops(t, true, nil)
			h := serveIn(t, Config{Responses: tc.responses}, newSet(t, backends.RoundRobin, a), set)
			needRing(t, set)
			const clients, rounds = 2*batchSize + 7, 30
			cs := make([]*net.UDPConn, clients)
			for i := range cs {
				cs[i] = dial(t, h.addr())
			}
			before := ringSubmitted(t)
			for r := range rounds {
				msgs := make([][]byte, clients)
				for i := range msgs {
					n := 20 + i*37%500
					if i%19 == 5 && r%3 == 0 {
						n = 65507 // the largest IPv4 datagram, among the small ones
					}
					msgs[i] = message(r, i, n)
				}
				if err := askAll(cs, msgs, func(i int) []byte { return msgs[i] }); err != nil {
					t.Fatalf("round %d: %v", r, err)
				}
			}
			if ops := ringSubmitted(t) - before; ops < clients*rounds/2 {
				t.Errorf("%d operations through the ring for %d datagrams each way", ops, clients*rounds)
			}
			if tc.responses > 0 {
				waitFor(t, "sessions to end at their reply", func() bool {
					return value(t, h.reg, "tierlb_udp_sessions_active", map[string]string{"service": "dns", "backend": "a"}) == 0
				})
			}
		})
	}
}

// waitFor polls cond until it holds, or fails the test after a while.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startBurstBackend answers each datagram with n datagrams: the query,
// then "#1 query" up to "#n-1 query".
func startBurstBackend(t *testing.T, n int) *testBackend {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	tb := &testBackend{id: "burst", conn: c, done: make(chan struct{})}
	go func() {
		defer close(tb.done)
		buf := make([]byte, 1<<16)
		for {
			k, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			c.WriteToUDPAddrPort(buf[:k], from)
			for j := 1; j < n; j++ {
				c.WriteToUDPAddrPort(fmt.Appendf(nil, "#%d %s", j, buf[:k]), from)
			}
		}
	}()
	t.Cleanup(tb.stop)
	return tb
}

// burstClients serves cfg in one loop with a ring, to a burst backend of
// replies datagrams per query, and dials more clients than a batch holds.
func burstClients(t *testing.T, replies int, cfg Config) (*harness, []*net.UDPConn) {
	t.Helper()
	b := startBurstBackend(t, replies)
	set := ringLoops(t, true, nil)
	h := serveIn(t, cfg, newSet(t, backends.RoundRobin, b), set)
	needRing(t, set)
	cs := make([]*net.UDPConn, batchSize+3)
	for i := range cs {
		cs[i] = dial(t, h.addr())
	}
	return h, cs
}

// TestRingSessionWithSeveralReplies: sessions whose backend socket holds
// several datagrams when the loop reads it get every one of them, in
// order, while other sessions are read in the same wakeups.
func TestRingSessionWithSeveralReplies(t *testing.T) {
	const replies = 6
	_, cs := burstClients(t, replies, Config{})
	buf := make([]byte, 1<<10)
	for r := range 10 {
		for i, c := range cs {
			if _, err := c.Write(message(r, i, 0)); err != nil {
				t.Fatal(err)
			}
		}
		for i, c := range cs {
			q := message(r, i, 0)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			for j := range replies {
				n, err := c.Read(buf)
				if err != nil {
					t.Fatalf("round %d, client %d: reply %d: %v", r, i, j, err)
				}
				want := q
				if j > 0 {
					want = fmt.Appendf(nil, "#%d %s", j, q)
				}
				if !bytes.Equal(buf[:n], want) {
					t.Fatalf("round %d, client %d: reply %d is %q, want %q", r, i, j, buf[:n], want)
				}
			}
		}
	}
}

// TestRingRefusedMovesSessions: a backend stops while many sessions use
// it; the refusals its port draws move those sessions to the other
// backend, as without the ring, and are counted.
func TestRingRefusedMovesSessions(t *testing.T) {
	a := startBackend(t, "udp4", "127.0.0.1:0", "a", false)
	b := startBackend(t, "udp4", "127.0.0.1:0", "b", false)
	bs := newSet(t, backends.RoundRobin, a, b)
	set := ringLoops(t, true, nil)
	h := serveIn(t, Config{}, bs, set)
	needRing(t, set)
	const clients = 2 * batchSize
	cs := make([]*net.UDPConn, clients)
	for i := range cs {
		cs[i] = dial(t, h.addr())
	}
	owner := make([]string, clients)
	for i, c := range cs {
		owner[i] = ask(t, c, fmt.Sprintf("hello-%d", i))
	}
	onA := 0
	for _, id := range owner {
		if id == "a" {
			onA++
		}
	}
	a.stop()
	// Every client sends at once: each datagram to a draws an ICMP port
	// unreachable, which the session's socket reports as a refusal.
	// Their failed receives leave gaps in the reply batch between the
	// replies of the sessions on b, which still reach their own clients.
	for i, c := range cs {
		c.Write(message(-1, i, 0))
	}
	buf := make([]byte, 1<<10)
	for i, c := range cs {
		if owner[i] != "b" {
			continue
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if want := append([]byte("b "), message(-1, i, 0)...); err != nil || !bytes.Equal(buf[:n], want) {
			t.Fatalf("client %d on b: reply %q, %v; want %q", i, buf[:n], err, want)
		}
	}
	waitFor(t, "the refusals", func() bool {
		return bs.Backend("a").ConnectErrors()[backends.DialRefused] >= uint64(onA)
	})
	// The sessions refused move with their next datagram, sent at once.
	for r := range 30 {
		msgs := make([][]byte, clients)
		for i := range msgs {
			msgs[i] = message(r, i, 0)
		}
		err := askAll(cs, msgs, func(i int) []byte { return append([]byte("b "), msgs[i]...) })
		if err == nil {
			break
		}
		if r == 29 {
			t.Fatalf("after a stopped: %v", err)
		}
	}
	if refused := bs.Backend("a").ConnectErrors()[backends.DialRefused]; refused < 1 {
		t.Errorf("refusals counted on a: %d, want at least 1", refused)
	}
	if v := value(t, h.reg, "tierlb_udp_sessions_active", map[string]string{"service": "dns", "backend": "a"}); v != 0 {
		t.Errorf("sessions_active{a} = %v, want 0", v)
	}
	if v := value(t, h.reg, "tierlb_udp_sessions_active", map[string]string{"service": "dns", "backend": "b"}); v != clients {
		t.Errorf("sessions_active{b} = %v, want %d", v, clients)
	}
}

// TestRingFails: a loop whose ring stops working (here its descriptor is
// replaced) says so once and serves on without it; the datagrams of the
// lost batch are sent again the plain way, and the sockets it was to
// close are closed.
func TestRingFails(t *testing.T) {
	for _, tc := range []struct {
		name      string
		responses int
	}{{"sessions", 0}, {"a session per query", 1}} {
		t.Run(tc.name, func(t *testing.T) {
			a := startBackend(t, "udp4", "127.0.0.1:0", "a", false)
			logs := &testkit.Messages{}
			set := ringLoops(t, true, slog.New(logs))
			h := serveIn(t, Config{Responses: tc.responses}, newSet(t, backends.RoundRobin, a), set)
			needRing(t, set)
			const clients = batchSize
			cs := make([]*net.UDPConn, clients)
			for i := range cs {
				cs[i] = dial(t, h.addr())
			}
			round := func(r int) error {
				msgs := make([][]byte, clients)
				for i := range msgs {
					msgs[i] = message(r, i, 100)
				}
				return askAll(cs, msgs, func(i int) []byte { return append([]byte("a "), msgs[i]...) })
			}
			fds := testkit.OpenFDs(t)
			if err := round(0); err != nil {
				t.Fatal(err)
			}
			rings := testkit.BreakRings(t)
			for r := 1; logs.Count("io_uring batch failed") == 0; r++ {
				if r == 100 {
					t.Fatal("100 rounds of datagrams from many clients and no batch through the ring")
				}
				if err := round(r); err != nil {
					t.Fatalf("round %d: %v", r, err)
				}
			}
			for r := 100; r < 110; r++ {
				if err := round(r); err != nil {
					t.Fatalf("round %d after the ring failed: %v", r, err)
				}
			}
			if n := logs.Count("io_uring batch failed"); n != 1 {
				t.Errorf("%d warnings of the failed batch, want 1", n)
			}
			if v := dropped(t, h, DropSendError); v != 0 {
				t.Errorf("%v datagrams dropped as send errors, want 0", v)
			}
			if tc.responses > 0 {
				// Every session ended: the loop holds what it held
				// before, less the ring.
				waitFor(t, "every session to end", func() bool { return h.svc.Active() == 0 })
				waitFor(t, "the sockets to close", func() bool { return testkit.OpenFDs(t) == fds-rings })
			}
		})
	}
}

// TestRingOff: loops made without io_uring hold no ring and serve many
// clients at once.
func TestRingOff(t *testing.T) {
	a := startBackend(t, "udp4", "127.0.0.1:0", "a", false)
	set := ringLoops(t, false, nil)
	h := serveIn(t, Config{}, newSet(t, backends.RoundRobin, a), set)
	const clients = batchSize + 5
	cs := make([]*net.UDPConn, clients)
	for i := range cs {
		cs[i] = dial(t, h.addr())
	}
	for r := range 5 {
		msgs := make([][]byte, clients)
		for i := range msgs {
			msgs[i] = message(r, i, 100)
		}
		if err := askAll(cs, msgs, func(i int) []byte { return append([]byte("a "), msgs[i]...) }); err != nil {
			t.Fatalf("round %d: %v", r, err)
		}
	}
	if n := len(testkit.RingFDs(t)); n != 0 {
		t.Errorf("%d io_uring descriptors with io_uring off, want 0", n)
	}
}

// Datagrams of many clients through the ring allocate nothing either.
func TestNoAllocationPerDatagramBatched(t *testing.T) {
	a := startBackend(t, "udp4", "127.0.0.1:0", "a", true)
	set := ringLoops(t, true, nil)
	h := serveIn(t, Config{}, newSet(t, backends.RoundRobin, a), set)
	needRing(t, set)
	const clients = batchSize
	cs := make([]*net.UDPConn, clients)
	for i := range cs {
		cs[i] = dial(t, h.addr())
		cs[i].SetReadDeadline(time.Now().Add(time.Minute))
	}
	msg, buf := []byte("ping"), make([]byte, 64)
	round := func() {
		for _, c := range cs {
			if _, err := c.Write(msg); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range cs {
			if _, err := c.Read(buf); err != nil {
				t.Fatal(err)
			}
		}
	}
	for range 50 {
		round()
	}
	const n = 300
	before := ringSubmitted(t)
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for range n {
		round()
	}
	runtime.ReadMemStats(&m1)
	if allocs := m1.Mallocs - m0.Mallocs; allocs > n*clients/100 {
		t.Fatalf("%d allocations over %d datagrams each way", allocs, n*clients)
	}
	if ringSubmitted(t) == before {
		t.Fatal("no datagram went through the ring")
	}
}

// TestRingResponsesWithQueriesInFlight: clients with two queries in
// flight on sessions that end after their replies (udp.responses), the
// backend answering each twice, round after round: a session read while
// its next query waits for the ring counts that query first, so every
// reply arrives and no query is dropped.
func TestRingResponsesWithQueriesInFlight(t *testing.T) {
	h, cs := burstClients(t, 2, Config{Responses: 2})
	buf := make([]byte, 1<<10)
	for r := range 40 {
		for i, c := range cs {
			c.Write(message(r, 2*i, 0))
			c.Write(message(r, 2*i+1, 0))
		}
		for i, c := range cs {
			want := map[string]bool{}
			for _, q := range [][]byte{message(r, 2*i, 0), message(r, 2*i+1, 0)} {
				want[string(q)] = true
				want["#1 "+string(q)] = true
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			for len(want) > 0 {
				n, err := c.Read(buf)
				if err != nil {
					t.Fatalf("round %d, client %d: %d replies missing: %v", r, i, len(want), err)
				}
				delete(want, string(buf[:n]))
			}
		}
	}
	if v := dropped(t, h, DropDraining); v != 0 {
		t.Errorf("%v queries dropped as their sessions ended, want 0", v)
	}
}
