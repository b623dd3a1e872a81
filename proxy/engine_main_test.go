package proxy

import (
	"flag"
	"fmt"
	"os"
	"testing"
)

// TestMain runs the whole suite once per engine, so every test of the
// goroutine path holds for the epoll engine too. With TIERLB_ENGINE set
// (as child processes of the tests inherit it) only that engine runs.
func TestMain(m *testing.M) {
	if os.Getenv(engineEnv) != "" {
		os.Exit(m.Run())
	}
	flag.Parse()
	code := 0
	for _, k := range []engineKind{engineGoroutine, engineEpoll} {
		if err := os.Setenv(engineEnv, k.String()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if testing.Verbose() {
			fmt.Printf("=== ENGINE %s\n", k)
		}
		if c := m.Run(); c != 0 {
			fmt.Printf("FAIL with engine %s\n", k)
			code = c
		}
	}
	os.Unsetenv(engineEnv)
	os.Exit(code)
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
