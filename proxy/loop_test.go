package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/tierlb/tierlb/internal/testkit"
)

// TestEngineConnSize keeps the per-connection struct small: it is what an
// idle connection costs the engine besides the kernel's sockets.
func TestEngineConnSize(t *testing.T) {
	size := unsafe.Sizeof(conn{})
	t.Logf("conn: %d bytes, dialState (only while dialing): %d bytes", size, unsafe.Sizeof(dialState{}))
	if size > 512 {
		t.Errorf("econn is %d bytes, want well under 1 KiB", size)
	}
}

// TestEngineResetWithData: a peer that sends data and resets at once (the
// RST arrives with the data, in one wakeup) still has its reset passed on
// as a reset, not a FIN, in both directions.
func TestEngineResetWithData(t *testing.T) {
	payload := bytes.Repeat([]byte("x"), 3000)
	t.Run("backend resets", func(t *testing.T) {
		be := startBackend(t, func(c net.Conn) {
			io.ReadFull(c, make([]byte, 1))
			c.Write(payload)
			c.(*net.TCPConn).SetLinger(0)
		})
		s, al := loggedService(t, Config{ZeroCopy: true}, staticSet(t, be.addr()))
		c := dial(t, s)
		c.Write([]byte("g"))
		err := readEnd(c, 5*time.Second)
		if !errors.Is(err, unix.ECONNRESET) {
			t.Fatalf("client read ended with %v, want a reset", err)
		}
		if end := al.waitEnd(t); end != "error: read backend: connection reset by peer" {
			t.Errorf("end = %q", end)
		}
	})
	t.Run("client resets", func(t *testing.T) {
		seen := make(chan error, 1)
		be := startBackend(t, func(c net.Conn) {
			c.Write([]byte("r"))
			_, err := io.Copy(io.Discard, c)
			seen <- err
		})
		s, al := loggedService(t, Config{ZeroCopy: true}, staticSet(t, be.addr()))
		c := dial(t, s)
		readN(t, c, 1)
		c.Write(payload)
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
		if end := al.waitEnd(t); end != "error: read client: connection reset by peer" {
			t.Errorf("end = %q", end)
		}
	})
}

// TestEngineManyConnections: 400 connections open at once, spread over the
// loops, each echoing a different amount, all exact.
func TestEngineManyConnections(t *testing.T) {
	be := startBackend(t, echo)
	s := startService(t, Config{ZeroCopy: true}, staticSet(t, be.addr()))
	const n = 400
	conns := make([]*net.TCPConn, n)
	for i := range conns {
		conns[i] = dial(t, s)
	}
	testkit.Eventually(t, 10*time.Second, "all connected", func() bool { return s.Active() == n })
	eng := engineOf(t, s)
	perLoop := map[int]int{}
	eng.call(func(l *loop) { perLoop[l.el.Index()] = len(l.live) })
	t.Logf("connections per loop: %v", perLoop)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := bytes.Repeat([]byte{byte(i)}, 1+i*331%(200<<10))
			c.SetDeadline(time.Now().Add(20 * time.Second))
			go c.Write(msg)
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
				errs <- fmt.Errorf("connection %d: %d bytes echoed wrong (%v)", i, len(msg), err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestEngineSpreadsConnections: connections that arrive one by one, which
// the kernel tends to hand to the same waiting loop, end up spread evenly
// over the loops, and each loop's load counter matches what it holds,
// also once they are closed.
func TestEngineSpreadsConnections(t *testing.T) {
	be := startBackend(t, echo)
	s := newTestService(t, Config{ZeroCopy: true}, staticSet(t, be.addr()), Options{Loops: testLoops(t, 4)})
	serveService(t, s)
	const n = 16
	conns := make([]*net.TCPConn, n)
	for i := range conns {
		conns[i] = dial(t, s)
		roundTrip(t, conns[i], "spread")
	}
	eng := engineOf(t, s)
	perLoop := func() (held, load []int) {
		eng.call(func(l *loop) {
			held = append(held, len(l.live))
			load = append(load, int(l.load.Load()))
		})
		return held, load
	}
	held, load := perLoop()
	t.Logf("connections per loop: %v", held)
	if !slices.Equal(held, load) {
		t.Errorf("load counters %v, want what the loops hold: %v", load, held)
	}
	if len(held) != 4 || slices.Max(held)-slices.Min(held) > 1 {
		t.Errorf("connections per loop %v, want 4 loops within one of each other", held)
	}
	for _, c := range conns {
		c.Close()
	}
	testkit.Eventually(t, 5*time.Second, "all closed", func() bool { return s.Active() == 0 })
	testkit.Eventually(t, 5*time.Second, "loads back to zero", func() bool {
		held, load := perLoop()
		return slices.Max(held) == 0 && slices.Max(load) == 0
	})
}

// TestEngineAcceptPause: an accept error takes the listener out of the
// loop for a backoff that doubles, instead of spinning on a
// level-triggered listener, and accepting resumes after it.
func TestEngineAcceptPause(t *testing.T) {
	be := startBackend(t, echo)
	s := startService(t, Config{ZeroCopy: true}, staticSet(t, be.addr()))
	eng := engineOf(t, s)
	var backoffs []time.Duration
	eng.call(func(l *loop) {
		a := s.lns[0].accs[l.el.Index()]
		for range 3 {
			a.pause(unix.EMFILE)
			backoffs = append(backoffs, a.backoff)
		}
		a.backoff = 0
		a.pause(unix.EMFILE)
	})
	want := []time.Duration{minBackoff, 2 * minBackoff, 4 * minBackoff}
	for i := range want {
		if backoffs[len(backoffs)-3+i] != want[i] {
			t.Fatalf("backoffs %v, want each loop to double from %v", backoffs, minBackoff)
		}
	}
	// Every loop is paused now; a client waits in the backlog and is
	// served once the backoff is over.
	t0 := time.Now()
	roundTrip(t, dial(t, s), "after the pause")
	t.Logf("served %v after every loop paused for %v", time.Since(t0), minBackoff)
	// The other loops resume at their own deadlines, a little later.
	testkit.Eventually(t, 5*time.Second, "every loop accepting again", func() bool {
		paused := 0
		eng.call(func(l *loop) { paused += len(l.paused) })
		return paused == 0
	})
}

// TestEngineAcceptsOneAtATime: while connections arrive one at a time, a
// loop takes each with one accept instead of draining the queue until
// accept finds it empty; a burst queued meanwhile is still taken whole,
// the listener being level-triggered.
func TestEngineAcceptsOneAtATime(t *testing.T) {
	be := startBackend(t, echo)
	loops := testLoops(t, 1)
	s := newTestService(t, Config{}, staticSet(t, be.addr()), Options{Loops: loops})
	serveService(t, s)
	eng := engineOf(t, s)
	one := func() (one bool) {
		eng.call(func(l *loop) { one = s.lns[0].accs[l.el.Index()].one })
		return one
	}
	for i := range 4 {
		c := dial(t, s)
		roundTrip(t, c, fmt.Sprintf("connection %d", i))
		c.Close()
		time.Sleep(2 * time.Millisecond)
	}
	if !one() {
		t.Fatal("connections that came one at a time are still taken by draining the queue")
	}
	// A burst: the loop is held busy while the clients connect, so the
	// kernel queues them all, then it takes one and must find the rest.
	const burst = 32
	el := loops.Loops()[0]
	el.Post(func() { time.Sleep(50 * time.Millisecond) })
	errs := make(chan error, burst)
	for i := range burst {
		go func() {
			c, err := net.DialTimeout("tcp", s.Addr().String(), 10*time.Second)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			if err := echoOnce(c); err != nil {
				errs <- fmt.Errorf("burst connection %d: %w", i, err)
				return
			}
			errs <- nil
		}()
	}
	for range burst {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// engineOf waits for the service to accept in its loops and returns them.
func engineOf(t testing.TB, s *Service) testEngine {
	t.Helper()
	var set *Loops
	testkit.Eventually(t, 5*time.Second, "the service accepting", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		set = s.set
		return s.accepting
	})
	return testEngine{set}
}

// testEngine inspects the TCP state of a set's loops.
type testEngine struct{ set *Loops }

// call runs fn in each loop in turn and waits for it; false if a loop has
// stopped.
func (e testEngine) call(fn func(l *loop)) bool {
	ok := true
	for _, el := range e.set.Loops() {
		if !el.Call(func() { fn(tcpLoop(el)) }) {
			ok = false
		}
	}
	return ok
}

// TestBackendHostName: a backend given by host name is resolved off the
// loop on each dial; an unknown name is a failed dial and the next backend
// serves.
func TestBackendHostName(t *testing.T) {
	be := startBackend(t, echo)
	_, port, _ := net.SplitHostPort(be.addr())
	set := staticSet(t, "no-such-host.invalid:"+port, "localhost:"+port)
	s := startService(t, Config{ZeroCopy: true, Retries: 1}, set)
	for range 2 {
		c := dial(t, s)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		roundTrip(t, c, "by name")
		c.Close()
	}
	if n := set.Backend("no-such-host.invalid:" + port).ConnectErrors(); n[0]+n[1]+n[2]+n[3] == 0 {
		t.Errorf("the unknown name counted no connect error: %v", n)
	}
}

// raceEnabled reports whether the test binary was built with -race, which
// multiplies memory, so RSS figures are then only logged, not checked.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// connFDs returns the client and backend descriptors of the service's
// open connections.
func connFDs(t testing.TB, s *Service) [][2]int {
	t.Helper()
	var out [][2]int
	engineOf(t, s).call(func(l *loop) {
		for _, c := range l.live {
			out = append(out, [2]int{int(c.cfd), int(c.bfd)})
		}
	})
	return out
}

// idlePipes counts the pipes the service's loops keep idle.
func idlePipes(t testing.TB, s *Service) int {
	n := 0
	engineOf(t, s).call(func(l *loop) { n += len(l.free.pipes) })
	return n
}

// TestEngineTrimsIdlePipes: pipes lent for bursts stay pooled while
// bursts keep coming, and are closed once none has been used for
// pipeIdle, so an unprivileged user's pipe budget is not held by services
// gone quiet.
func TestEngineTrimsIdlePipes(t *testing.T) {
	be := startBackend(t, echo)
	s := startService(t, Config{ZeroCopy: true}, staticSet(t, be.addr()))
	c := dial(t, s)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	burst := func() {
		const size = 1 << 20
		go func() { _, _ = sendRandom(c, 1, size) }()
		if _, err := io.ReadFull(c, make([]byte, size)); err != nil {
			t.Fatal(err)
		}
	}
	// Between bursts the pipes are back in the loop's list; a slow
	// machine may take more than pipeIdle between two, so it tries again.
	pooled := false
	var quiet time.Time
	for range 20 {
		burst()
		quiet = time.Now()
		if pooled = idlePipes(t, s) > 0; pooled {
			break
		}
	}
	if !pooled {
		t.Fatal("no pipe pooled right after a spliced burst")
	}
	testkit.Eventually(t, 10*time.Second, "idle pipes closed", func() bool { return idlePipes(t, s) == 0 })
	if d := time.Since(quiet); d < pipeIdle/2 {
		t.Errorf("idle pipes closed %v after the last burst, want about %v", d, pipeIdle)
	}
	// The connection still works, with a new pipe.
	roundTrip(t, c, strings.Repeat("again", 1000))
}
