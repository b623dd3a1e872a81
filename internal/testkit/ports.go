package testkit

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
)

// ListenRange calls listen with a range of n ports on 127.0.0.1
// ("127.0.0.1:first-last") until a range is free, and returns it. Ranges
// start at random in 20000-59999, below Linux's ephemeral ports of the
// default range, and a bind that finds a port taken (another test,
// another helper) tries another range.
func ListenRange(t testing.TB, n int, listen func(addr string) error) string {
	t.Helper()
	var err error
	for range 20 {
		first := 20000 + rand.IntN(40000-n)
		addr := fmt.Sprintf("127.0.0.1:%d-%d", first, first+n-1)
		if err = listen(addr); err == nil {
			return addr
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("listen on %s: %v", addr, err)
		}
	}
	t.Fatalf("no free range of %d ports on 127.0.0.1: %v", n, err)
	return ""
}
