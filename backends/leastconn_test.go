package backends

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// An idle pool has every backend tied, and ties rotate: 10,000 picks with no
// connection opened split exactly like round robin.
func TestLeastConnTiesRotate(t *testing.T) {
	for _, n := range []int{2, 3, 100} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			s := newTestSet(t, LeastConn, SetOptions{}, nil)
			s.Update(testSpecs(n))
			counts := countPicks(s.Pool(), 10000)
			lo, hi := 10000/n, (10000+n-1)/n
			for id, c := range counts {
				if c < lo || c > hi {
					t.Errorf("%s got %d picks, want %d-%d", id, c, lo, hi)
				}
			}
		})
	}
}

// leastconn follows the connections actually open: with a random mix of
// opens and closes every pick goes to a backend with the fewest open
// connections per weight, and the open counts never drift apart by more than
// one connection's worth.
func TestLeastConnFollowsOpenConnections(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
	}{
		{"equal", []int{1, 1, 1}},
		{"3:1", []int{3, 1}},
		{"5:3:2", []int{5, 3, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSet(t, LeastConn, SetOptions{}, nil)
			s.Update(testSpecs(len(tt.weights), tt.weights...))
			p := s.Pool()
			rng := rand.New(rand.NewPCG(1, 2))
			var open []*Backend
			for range 10000 {
				// Close about as often as we open so counts go up and down.
				if len(open) > 0 && rng.IntN(2) == 0 {
					k := rng.IntN(len(open))
					open[k].ConnClosed(0, 0)
					open[k] = open[len(open)-1]
					open = open[:len(open)-1]
				}
				b := pick(p, netip.Addr{})
				for i, m := range p.Members() {
					if loadLess(m.Active(), p.Weight(i), b.Active(), p.Weight(memberIndex(p, b))) {
						t.Fatalf("picked %s with %d open, but %s has %d (weights %v)", b.ID(), b.Active(), m.ID(), m.Active(), tt.weights)
					}
				}
				b.ConnOpened()
				open = append(open, b)
			}
			// Fill up without closing: the open counts track the weights.
			for range 1000 {
				pick(p, netip.Addr{}).ConnOpened()
			}
			total := int64(len(open) + 1000)
			for i, m := range p.Members() {
				want := float64(total) * float64(tt.weights[i]) / float64(weightSum(tt.weights))
				if d := float64(m.Active()) - want; d > float64(tt.weights[i]) || d < -float64(tt.weights[i]) {
					t.Errorf("%s has %d open, want %.1f ± %d", m.ID(), m.Active(), want, tt.weights[i])
				}
			}
		})
	}
}

// The failover order is by load too: least loaded first, then the next.
func TestLeastConnFailoverOrder(t *testing.T) {
	s := newTestSet(t, LeastConn, SetOptions{}, nil)
	s.Update(testSpecs(12))
	for i, b := range s.Backends() {
		for range (i * 7) % 12 { // distinct loads 0, 7, 2, 9, 4, ...
			b.ConnOpened()
		}
	}
	p := s.Pool()
	for _, size := range []int{1, 3, maxRanked, 12} {
		order := p.Order(netip.Addr{}, make([]*Backend, 0, size))
		if len(order) != size {
			t.Fatalf("cap %d: order has %d backends", size, len(order))
		}
		checkDistinct(t, order)
		for i := 1; i < min(size, maxRanked); i++ {
			if order[i].Active() < order[i-1].Active() {
				t.Fatalf("cap %d: order %v not by load at %d", size, ids(order), i)
			}
		}
		if order[0].Active() != 0 {
			t.Fatalf("first choice %s has %d open, want the idle one", order[0].ID(), order[0].Active())
		}
	}
	// A backend that went down since the snapshot is skipped: the next least
	// loaded is b07, with 7*7%12 = 1 open.
	s.Backend("b00").SetHealth(false, "refused")
	if b := pick(p, netip.Addr{}); b.ID() != "b07" {
		t.Fatalf("after b00 went down picked %s with %d open, want b07 with 1", b.ID(), b.Active())
	}
}

func memberIndex(p *Pool, b *Backend) int {
	for i, m := range p.Members() {
		if m == b {
			return i
		}
	}
	return -1
}
