package backends

import (
	"fmt"
	"net/netip"
	"testing"
)

var allPolicies = []Policy{RoundRobin, LeastConn, Random2, SourceHash}

// benchPool returns a pool of n backends with equal or distinct weights and
// a few open connections each, as a busy service would have.
func benchPool(tb testing.TB, policy Policy, n int, weighted bool) *Pool {
	weights := make([]int, n)
	for i := range weights {
		weights[i] = 1
		if weighted {
			weights[i] = 1 + i%5
		}
	}
	s := newTestSet(tb, policy, SetOptions{}, nil)
	s.Update(testSpecs(n, weights...))
	for i, b := range s.Backends() {
		for range i % 7 {
			b.ConnOpened()
		}
	}
	return s.Pool()
}

// Picking must not allocate for any policy, pool size or retry count.
func TestOrderDoesNotAllocate(t *testing.T) {
	for _, policy := range allPolicies {
		for _, n := range []int{1, 3, 100} {
			for _, weighted := range []bool{false, true} {
				p := benchPool(t, policy, n, weighted)
				for _, size := range []int{1, 3, 12} {
					buf := make([]*Backend, 0, size)
					client := netip.MustParseAddr("192.0.2.1")
					allocs := testing.AllocsPerRun(200, func() {
						client = client.Next()
						_ = p.Order(client, buf[:0])
					})
					if allocs != 0 {
						t.Errorf("%s, %d backends, weighted %v, cap %d: %.1f allocs per pick", policy, n, weighted, size, allocs)
					}
				}
			}
		}
	}
}

// BenchmarkOrder measures one pick with its failover order (cap 3: retries
// 2, the default), serially and from all Ps at once (one shared rotation
// counter, per-thread random sources).
func BenchmarkOrder(b *testing.B) {
	for _, policy := range allPolicies {
		for _, n := range []int{3, 100} {
			for _, weighted := range []bool{false, true} {
				name := fmt.Sprintf("%s/n=%d/weighted=%v", policy, n, weighted)
				p := benchPool(b, policy, n, weighted)
				b.Run(name+"/serial", func(b *testing.B) {
					b.ReportAllocs()
					var buf [3]*Backend
					i := 0
					for b.Loop() {
						i++
						_ = p.Order(clientAddr(i), buf[:0])
					}
				})
				b.Run(name+"/parallel", func(b *testing.B) {
					b.ReportAllocs()
					b.RunParallel(func(pb *testing.PB) {
						var buf [3]*Backend
						i := 0
						for pb.Next() {
							i++
							_ = p.Order(clientAddr(i), buf[:0])
						}
					})
				})
			}
		}
	}
}

// BenchmarkBuild measures a pool rebuild (every state change pays it once).
func BenchmarkBuild(b *testing.B) {
	for _, policy := range allPolicies {
		for _, n := range []int{3, 100} {
			b.Run(fmt.Sprintf("%s/n=%d", policy, n), func(b *testing.B) {
				s := newTestSet(b, policy, SetOptions{}, nil)
				weights := make([]int, n)
				for i := range weights {
					weights[i] = 1 + i%5
				}
				s.Update(testSpecs(n, weights...))
				b.ReportAllocs()
				for b.Loop() {
					s.rebuild()
				}
			})
		}
	}
}

// BenchmarkConnCounters measures what the data path pays per connection on
// a backend besides the pick: its open and close with their byte counts,
// and the state check each pick makes of every backend it returns.
func BenchmarkConnCounters(b *testing.B) {
	s := newTestSet(b, RoundRobin, SetOptions{}, nil)
	s.Update(testSpecs(1))
	be := s.Backends()[0]
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			be.ConnOpened()
			be.ConnClosed(100, 200)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				be.ConnOpened()
				be.ConnClosed(100, 200)
			}
		})
	})
	b.Run("up", func(b *testing.B) {
		up := 0
		for b.Loop() {
			if be.Up() {
				up++
			}
		}
		if up == 0 {
			b.Fatal("backend not up")
		}
	})
}
