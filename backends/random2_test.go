package backends

import (
	"fmt"
	"math"
	"net/netip"
	"testing"
	"time"
)

// Idle, every pair is a tie and the first draw wins, so picks are uniform:
// 10,000 picks over 4 backends give each 2500 ± 10% (about 6 standard
// deviations; this cannot flake in practice).
func TestRandom2UniformWhenIdle(t *testing.T) {
	s := newTestSet(t, Random2, SetOptions{}, nil)
	s.Update(testSpecs(4))
	counts := countPicks(s.Pool(), 10000)
	for id, c := range counts {
		if c < 2250 || c > 2750 {
			t.Errorf("%s got %d of 10000 picks, want 2500 ± 250", id, c)
		}
	}
	t.Logf("idle picks: %v", counts)
}

// With every pick opening a connection, the two choices keep the open counts
// tight: after 10,000 picks over N backends the busiest has at most 12 more
// than the idlest (the worst of 300 runs was 7 for 100 backends; pure random
// spreads about ±3 standard deviations of sqrt(100), some 60).
func TestRandom2BalancesOpenConnections(t *testing.T) {
	for _, n := range []int{3, 10, 100} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			s := newTestSet(t, Random2, SetOptions{}, nil)
			s.Update(testSpecs(n))
			p := s.Pool()
			for range 10000 {
				pick(p, netip.Addr{}).ConnOpened()
			}
			lo, hi := int64(math.MaxInt64), int64(0)
			for _, b := range p.Members() {
				lo, hi = min(lo, b.Active()), max(hi, b.Active())
			}
			if hi-lo > 12 {
				t.Errorf("open connections range %d-%d over %d backends, want a spread <= 12", lo, hi, n)
			}
			t.Logf("%d backends: open connections %d-%d", n, lo, hi)
		})
	}
}

// Weights count in the draw and in the load comparison: with connections
// kept open the counts follow the weights within 2%.
func TestRandom2Weighted(t *testing.T) {
	weights := []int{5, 3, 2}
	s := newTestSet(t, Random2, SetOptions{}, nil)
	s.Update(testSpecs(3, weights...))
	p := s.Pool()
	for range 10000 {
		pick(p, netip.Addr{}).ConnOpened()
	}
	for i, b := range p.Members() {
		want := 10000 * float64(weights[i]) / 10
		if d := float64(b.Active()) - want; math.Abs(d) > 200 {
			t.Errorf("%s (weight %d) has %d open, want %.0f ± 200", b.ID(), weights[i], b.Active(), want)
		}
	}
}

// The weighted draw itself: the first choice is drawn in proportion to the
// weights and the second is always another member.
func TestRandom2DrawTwo(t *testing.T) {
	weights := []int{6, 3, 1}
	p := &Pool{policy: Random2, weights: weights}
	for i := range weights {
		p.members = append(p.members, newBackend(nil, &Spec{ID: fmt.Sprint(i)}, time.Now(), false))
	}
	p.prepare()
	first := make([]int, 3)
	const draws = 100000
	for range draws {
		i, j := p.drawTwo()
		if i == j {
			t.Fatalf("drew %d twice", i)
		}
		first[i]++
	}
	for i, c := range first {
		want := draws * float64(weights[i]) / 10
		if math.Abs(float64(c)-want) > 0.03*draws {
			t.Errorf("member %d (weight %d) drawn first %d times, want %.0f ± 3%%", i, weights[i], c, want)
		}
	}
}

// The order holds the less loaded of the two first, then everyone else
// once: a busy backend is never first, since whatever it is drawn with is
// idle. A backend that went down since the snapshot is skipped.
func TestRandom2Order(t *testing.T) {
	s := newTestSet(t, Random2, SetOptions{}, nil)
	s.Update(testSpecs(5))
	p := s.Pool()
	s.Backend("b01").ConnOpened()
	for range 1000 {
		order := p.Order(netip.Addr{}, make([]*Backend, 0, 5))
		if len(order) != 5 || order[0].ID() == "b01" {
			t.Fatalf("order %v, want all 5 with busy b01 not first", ids(order))
		}
		checkDistinct(t, order)
	}
	s.Backend("b03").SetHealth(false, "refused")
	for range 1000 {
		order := p.Order(netip.Addr{}, make([]*Backend, 0, 5))
		if len(order) != 4 {
			t.Fatalf("order %v, want the 4 backends that are up", ids(order))
		}
		checkDistinct(t, order)
		for _, b := range order {
			if b.ID() == "b03" {
				t.Fatalf("order %v names b03, which is down", ids(order))
			}
		}
	}
}
