package backends

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for the Set, so slow start and ejection
// expiry can be tested without sleeping.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newTestSet returns a set on clock (nil: the real clock), closed at the end
// of the test.
func newTestSet(t testing.TB, policy Policy, opts SetOptions, clock *fakeClock) *Set {
	t.Helper()
	var now func() time.Time
	if clock != nil {
		now = clock.Now
	}
	s := newSet("svc", policy, opts, now)
	t.Cleanup(s.Close)
	return s
}

// testSpecs returns n specs b00, b01, ... with the given weights (1 when
// weights is shorter than n).
func testSpecs(n int, weights ...int) []Spec {
	specs := make([]Spec, n)
	for i := range specs {
		w := 1
		if i < len(weights) {
			w = weights[i]
		}
		specs[i] = Spec{ID: fmt.Sprintf("b%02d", i), Address: fmt.Sprintf("127.0.0.1:%d", 10000+i), Weight: w}
	}
	return specs
}

// clientAddr returns the i-th of many distinct client addresses.
func clientAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}

// pick returns the first choice for client, or nil.
func pick(p *Pool, client netip.Addr) *Backend {
	var buf [1]*Backend
	if o := p.Order(client, buf[:0]); len(o) > 0 {
		return o[0]
	}
	return nil
}

// countPicks returns how many of picks first choices went to each backend ID.
func countPicks(p *Pool, picks int) map[string]int {
	counts := map[string]int{}
	for i := range picks {
		if b := pick(p, clientAddr(i)); b != nil {
			counts[b.ID()]++
		}
	}
	return counts
}

// ids returns the IDs of backends, in order.
func ids(bs []*Backend) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.ID()
	}
	return out
}

// checkDistinct fails the test if an order names a backend twice.
func checkDistinct(t testing.TB, order []*Backend) {
	t.Helper()
	seen := map[*Backend]bool{}
	for _, b := range order {
		if seen[b] {
			t.Fatalf("order %v names %s twice", ids(order), b.ID())
		}
		seen[b] = true
	}
}
