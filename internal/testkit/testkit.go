package testkit

import (
	"net"
	"sync"
	"testing"
	"time"
)

// ClosedPort returns a loopback address that nothing listened on a moment
// ago and that no earlier call in this process returned: a dial to it is
// refused, and a listener may bind it.
func ClosedPort(t testing.TB) string {
	t.Helper()
	handedMu.Lock()
	defer handedMu.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen on loopback: %v", err)
		}
		addr := ln.Addr().String()
		if err := ln.Close(); err != nil {
			t.Fatalf("close %s: %v", addr, err)
		}
		// The kernel may pick a port it picked a moment ago: two calls
		// of one test (an admin port and a service port) once got the
		// same one, and the second listener failed to bind.
		if !handed[addr] {
			handed[addr] = true
			return addr
		}
	}
	t.Fatal("no loopback port that was not handed out before in 100 tries")
	return ""
}

// handed are the addresses ClosedPort has returned in this process.
var (
	handedMu sync.Mutex
	handed   = map[string]bool{}
)

// pollEvery is short enough that waits end within a few milliseconds of
// the condition, and long enough not to take a core from what is awaited.
const pollEvery = 2 * time.Millisecond

// Eventually polls cond until it holds, and fails the test, naming what it
// waited for, if it does not within the given time. Call it from the test's
// goroutine only.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Within(within, cond) {
		t.Fatalf("timed out after %v waiting for %s", within, what)
	}
}

// Within polls cond until it holds or the time is up, and reports whether
// it held. It is Eventually for goroutines other than the test's and for
// tests that assert on a condition never becoming true.
func Within(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pollEvery)
	}
	return true
}
