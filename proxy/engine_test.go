package proxy

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// These tests pin the epoll engine whichever pass TestMain runs.
func useEpoll(t *testing.T) {
	t.Helper()
	t.Setenv(engineEnv, engineEpoll.String())
}

// TestEngineConnSize keeps the per-connection struct small: it is what an
// idle connection costs the engine besides the kernel's sockets.
func TestEngineConnSize(t *testing.T) {
	size := unsafe.Sizeof(econn{})
	t.Logf("econn: %d bytes, dialState (only while dialing): %d bytes", size, unsafe.Sizeof(dialState{}))
	if size > 512 {
		t.Errorf("econn is %d bytes, want well under 1 KiB", size)
	}
}

// TestEngineResetWithData: a peer that sends data and resets at once (the
// RST arrives with the data, in one wakeup) still has its reset passed on
// as a reset, not a FIN, in both directions.
func TestEngineResetWithData(t *testing.T) {
	useEpoll(t)
	payload := bytes.Repeat([]byte("x"), 3000)
	t.Run("backend resets", func(t *testing.T) {
		be := startBackend(t, func(c net.Conn) {
			io.ReadFull(c, make([]byte, 1))
			c.Write(payload)
			c.(*net.TCPConn).SetLinger(0)
		})
		s, al := loggedService(t, Config{ZeroCopy: true}, staticSet(t, be.addr()), copyAuto)
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
		s, al := loggedService(t, Config{ZeroCopy: true}, staticSet(t, be.addr()), copyAuto)
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
	useEpoll(t)
	be := startBackend(t, echo)
	s := startService(t, Config{ZeroCopy: true}, staticSet(t, be.addr()), copyAuto)
	const n = 400
	conns := make([]*net.TCPConn, n)
	for i := range conns {
		conns[i] = dial(t, s)
	}
	eventually(t, 10*time.Second, "all connected", func() bool { return s.Active() == n })
	eng := engineOf(t, s)
	perLoop := map[int]int{}
	eng.call(func(l *loop) {
		for i, x := range eng.loops {
			if x == l {
				perLoop[i] = len(l.live)
			}
		}
	})
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
	useEpoll(t)
	be := startBackend(t, echo)
	s := newTestService(t, Config{ZeroCopy: true}, staticSet(t, be.addr()), copyAuto)
	s.loops = 4
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
	eventually(t, 5*time.Second, "all closed", func() bool { return s.Active() == 0 })
	eventually(t, 5*time.Second, "loads back to zero", func() bool {
		held, load := perLoop()
		return slices.Max(held) == 0 && slices.Max(load) == 0
	})
}

// TestEngineAcceptPause: an accept error takes the listener out of the
// loop for a backoff that doubles, instead of spinning on a
// level-triggered listener, and accepting resumes after it.
func TestEngineAcceptPause(t *testing.T) {
	useEpoll(t)
	be := startBackend(t, echo)
	s := startService(t, Config{ZeroCopy: true}, staticSet(t, be.addr()), copyAuto)
	eng := engineOf(t, s)
	var backoffs []time.Duration
	eng.call(func(l *loop) {
		for range 3 {
			l.pauseAccept(unix.EMFILE)
			backoffs = append(backoffs, l.backoff)
		}
		l.backoff = 0
		l.pauseAccept(unix.EMFILE)
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
	eventually(t, 5*time.Second, "every loop accepting again", func() bool {
		paused := 0
		eng.call(func(l *loop) {
			if l.acceptPaused {
				paused++
			}
		})
		return paused == 0
	})
}

// engineOf waits for the service's epoll engine to run and returns it.
func engineOf(t *testing.T, s *Service) *engine {
	t.Helper()
	var e *engine
	eventually(t, 5*time.Second, "epoll engine running", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		e = s.eng
		return e != nil
	})
	return e
}

// TestBackendHostName: a backend given by host name is resolved off the
// loop (epoll) or by the dialer (goroutine) on each dial; an unknown name
// is a failed dial and the next backend serves.
func TestBackendHostName(t *testing.T) {
	be := startBackend(t, echo)
	_, port, _ := net.SplitHostPort(be.addr())
	set := staticSet(t, "no-such-host.invalid:"+port, "localhost:"+port)
	s := startService(t, Config{ZeroCopy: true, Retries: 1}, set, copyAuto)
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

// TestMain runs the whole suite once per engine, so every test of the
// goroutine path holds for the epoll engine too. With TIERLB_ENGINE set
// (as child processes of the tests inherit it) only that engine runs.
func TestMain(m *testing.M) {
	if os.Getenv(engineEnv) != "" {
		os.Exit(m.Run())
	}
	flag.Parse()
	code := 0
	// The epoll engine runs twice: with its default wait (a blocking
	// epoll_wait) and parked in Go's netpoller.
	for _, run := range []struct{ engine, wait string }{
		{"goroutine", ""}, {"epoll", ""}, {"epoll", "netpoll"},
	} {
		err := os.Setenv(engineEnv, run.engine)
		if err == nil {
			err = os.Setenv(waitEnv, run.wait)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		name := strings.TrimSuffix(run.engine+" "+run.wait, " ")
		if testing.Verbose() {
			fmt.Printf("=== ENGINE %s\n", name)
		}
		if c := m.Run(); c != 0 {
			fmt.Printf("FAIL with engine %s\n", name)
			code = c
		}
	}
	os.Unsetenv(engineEnv)
	os.Unsetenv(waitEnv)
	os.Exit(code)
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

// currentEngine is the engine the running pass tests.
func currentEngine() engineKind {
	k, err := engineFromEnv()
	if err != nil {
		return engineGoroutine
	}
	return k
}

// connFDs returns the client and backend descriptors of the service's
// open connections, from either engine.
func connFDs(t testing.TB, s *Service) [][2]int {
	t.Helper()
	s.mu.Lock()
	eng := s.eng
	var out [][2]int
	for c := range s.conns {
		cfd, bfd := -1, -1
		if rc, err := c.client.SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) { cfd = int(fd) })
		}
		if b := c.backend.Load(); b != nil {
			if rc, err := b.SyscallConn(); err == nil {
				rc.Control(func(fd uintptr) { bfd = int(fd) })
			}
		}
		out = append(out, [2]int{cfd, bfd})
	}
	s.mu.Unlock()
	if eng != nil {
		eng.call(func(l *loop) {
			for _, c := range l.live {
				out = append(out, [2]int{int(c.cfd), int(c.bfd)})
			}
		})
	}
	return out
}

// idlePipes counts the pipes pooled by the service, in either engine.
func idlePipes(s *Service) int {
	n := s.cp.pipes.idle()
	s.mu.Lock()
	eng := s.eng
	s.mu.Unlock()
	if eng != nil {
		eng.call(func(l *loop) { n += len(l.freePipes) })
	}
	return n
}

// TestReserveProc checks, in child processes since GOMAXPROCS is global,
// that ReserveProc adds one P above the loops it returns, and leaves the
// runtime alone when the user set GOMAXPROCS or the loops do not sleep in
// epoll_wait.
func TestReserveProc(t *testing.T) {
	if os.Getenv("TIERLB_RESERVE_CHILD") != "" {
		before := runtime.GOMAXPROCS(0)
		loops := ReserveProc()
		again := ReserveProc()
		fmt.Printf("%d %d %d %d\n", before, loops, again, runtime.GOMAXPROCS(0))
		os.Exit(0)
	}
	for _, tc := range []struct {
		env        []string
		reserves   bool
		fixedProcs int
	}{
		{env: []string{engineEnv + "=epoll", waitEnv + "="}, reserves: true},
		{env: []string{engineEnv + "=epoll", waitEnv + "=", "GOMAXPROCS=3"}, fixedProcs: 3},
		{env: []string{engineEnv + "=epoll", waitEnv + "=netpoll"}},
		{env: []string{engineEnv + "=goroutine", waitEnv + "="}},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestReserveProc$")
		cmd.Env = append(os.Environ(), "TIERLB_RESERVE_CHILD=1", "GOMAXPROCS=")
		cmd.Env = append(cmd.Env, tc.env...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%v: %v", tc.env, err)
		}
		var before, loops, again, after int
		if _, err := fmt.Sscan(string(out), &before, &loops, &again, &after); err != nil {
			t.Fatalf("%v: child printed %q: %v", tc.env, out, err)
		}
		switch {
		case again != loops:
			t.Errorf("%v: second call returned %d, first %d", tc.env, again, loops)
		case tc.reserves && (loops != before || after != before+1):
			t.Errorf("%v: GOMAXPROCS %d -> %d with %d loops, want %d -> %d with %d", tc.env, before, after, loops, before, before+1, before)
		case !tc.reserves && (loops != 0 || after != before):
			t.Errorf("%v: GOMAXPROCS %d -> %d with %d loops, want it unchanged and 0", tc.env, before, after, loops)
		case tc.fixedProcs != 0 && before != tc.fixedProcs:
			t.Errorf("%v: child ran with GOMAXPROCS %d, want %d", tc.env, before, tc.fixedProcs)
		}
	}
}

// TestEngineTrimsIdlePipes: pipes lent for a burst stay pooled while bursts
// keep coming, and are closed once none has been used for pipeIdle, so an
// unprivileged user's pipe budget is not held by services gone quiet.
func TestEngineTrimsIdlePipes(t *testing.T) {
	useEpoll(t)
	be := startBackend(t, echo)
	s := newTestService(t, Config{ZeroCopy: true}, staticSet(t, be.addr()), copySplice)
	// Long enough that a slow test machine still sees the pool before
	// it is trimmed.
	s.pipeIdleAfter = 3 * time.Second
	serveService(t, s)
	c := dial(t, s)
	const size = 8 << 20
	go func() { _, _ = sendRandom(c, 1, size) }()
	if _, err := io.ReadFull(c, make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	busy := time.Now()
	if n := idlePipes(s); n == 0 {
		t.Fatal("no pipe pooled right after a spliced burst")
	}
	eventually(t, 10*time.Second, "idle pipes closed", func() bool { return idlePipes(s) == 0 })
	if d := time.Since(busy); d < s.pipeIdleAfter/2 {
		t.Errorf("idle pipes closed %v after the burst, want about %v", d, s.pipeIdleAfter)
	}
	// The connection still works, with a new pipe.
	roundTrip(t, c, strings.Repeat("again", 1000))
}
