package backends

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
)

// Equal weights: strict rotation, so 10,000 picks over N backends give each
// exactly floor or ceil of 10000/N, and consecutive picks are neighbours.
func TestRoundRobinStrictRotation(t *testing.T) {
	for _, n := range []int{1, 2, 3, 7, 100} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			s := newTestSet(t, RoundRobin, SetOptions{}, nil)
			s.Update(testSpecs(n))
			p := s.Pool()
			index := map[*Backend]int{}
			for i, b := range p.Members() {
				index[b] = i
			}
			counts := make([]int, n)
			prev := -1
			for range 10000 {
				i := index[pick(p, netip.Addr{})]
				counts[i]++
				if prev >= 0 && i != (prev+1)%n {
					t.Fatalf("pick went from member %d to %d, want %d", prev, i, (prev+1)%n)
				}
				prev = i
			}
			lo, hi := 10000/n, (10000+n-1)/n
			for i, c := range counts {
				if c < lo || c > hi {
					t.Errorf("member %d got %d picks, want %d-%d", i, c, lo, hi)
				}
			}
		})
	}
}

// The golden sequence is nginx's for weights 5:1:1 (ngx_http_upstream_round_robin.c).
func TestSmoothScheduleMatchesNginx(t *testing.T) {
	got := smoothSchedule([]int{5, 1, 1})
	want := []int32{0, 0, 1, 0, 2, 0, 0}
	if !slices.Equal(got, want) {
		t.Fatalf("schedule %v, want nginx's %v", got, want)
	}
}

// Weighted round robin: over whole periods every backend gets exactly its
// share, in every prefix each backend is within one pick of its exact share
// (smoothness), and a heavy backend's run is bounded.
func TestRoundRobinWeighted(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		maxRun  int // longest run of one backend, counted around the period
	}{
		{"5:1:1", []int{5, 1, 1}, 4},
		{"2:1", []int{2, 1}, 2},
		{"3:2", []int{3, 2}, 2},
		{"4:2:2 reduces to 2:1:1", []int{4, 2, 2}, 2},
		{"10:7:3:1", []int{10, 7, 3, 1}, 2},
		{"100:1", []int{100, 1}, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSet(t, RoundRobin, SetOptions{}, nil)
			s.Update(testSpecs(len(tt.weights), tt.weights...))
			p := s.Pool()
			sum := 0
			for _, w := range scheduleWeights(tt.weights) {
				sum += w
			}
			if len(p.schedule) != sum {
				t.Fatalf("schedule length %d, want %d (sum of reduced weights)", len(p.schedule), sum)
			}
			picks := 10000 / sum * sum
			seq := make([]int, picks)
			index := map[*Backend]int{}
			for i, b := range p.Members() {
				index[b] = i
			}
			counts := make([]int, len(tt.weights))
			for k := range seq {
				m := index[pick(p, netip.Addr{})]
				seq[k] = m
				counts[m]++
				// A fresh set's counter starts at a period boundary, so every
				// prefix of the picks is within one pick of the exact share.
				for i, c := range counts {
					exact := float64(k+1) * float64(tt.weights[i]) / float64(weightSum(tt.weights))
					if d := float64(c) - exact; d <= -1 || d >= 1 {
						t.Fatalf("after %d picks backend %d has %d, exact share %.2f", k+1, i, c, exact)
					}
				}
			}
			for i, c := range counts {
				want := picks * tt.weights[i] / weightSum(tt.weights)
				if c != want {
					t.Errorf("backend %d (weight %d) got %d of %d picks, want exactly %d", i, tt.weights[i], c, picks, want)
				}
			}
			if run := maxCyclicRun(seq); run > tt.maxRun {
				t.Errorf("longest run %d, want <= %d", run, tt.maxRun)
			}
			t.Logf("weights %v: counts %v over %d picks, longest run %d", tt.weights, counts, picks, maxCyclicRun(seq))
		})
	}
}

// Within one period starting at zero, the smooth schedule never strays a
// full pick from any backend's exact share: the property that makes it smooth.
func TestSmoothSchedulePrefixBound(t *testing.T) {
	for _, ws := range [][]int{{5, 1, 1}, {1, 18, 18, 11, 11, 9}, {2, 17, 17, 2, 17}, {7, 3}, {1, 2, 3, 4, 5, 6, 7, 8}} {
		sched := smoothSchedule(ws)
		counts := make([]int, len(ws))
		total := weightSum(ws)
		for k, m := range sched {
			counts[m]++
			for i, c := range counts {
				exact := float64(k+1) * float64(ws[i]) / float64(total)
				if d := float64(c) - exact; d <= -1 || d >= 1 {
					t.Fatalf("weights %v: after %d picks member %d has %d, exact %.3f", ws, k+1, i, c, exact)
				}
			}
		}
	}
}

func TestScheduleWeightsBounded(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
	}{
		{"large coprime", []int{5000, 3001, 1}},
		{"100 distinct", seqWeights(100)},
		{"max weight", []int{MaxWeight * rampSteps, MaxWeight*rampSteps - 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := scheduleWeights(tt.weights)
			sum := weightSum(got)
			if sum > maxSchedule+len(tt.weights) {
				t.Errorf("scaled weights sum to %d, want <= %d", sum, maxSchedule+len(tt.weights))
			}
			for i, w := range got {
				if w < 1 {
					t.Fatalf("weight %d scaled to %d: a backend dropped out", i, w)
				}
				// Scaling rounds down, except that no weight drops below 1.
				share, want := float64(w)/float64(sum), float64(tt.weights[i])/float64(weightSum(tt.weights))
				if d := share - want; d > 0.002 && w > 1 || d < -0.002 {
					t.Errorf("backend %d share %.4f, want %.4f", i, share, want)
				}
			}
		})
	}
}

// After its first choice round robin fails over to the other members in
// rotation order, skipping ones that went down since the snapshot.
func TestRoundRobinFailoverOrder(t *testing.T) {
	for _, weights := range [][]int{{1, 1, 1, 1}, {3, 1, 1, 1}} {
		t.Run(fmt.Sprint(weights), func(t *testing.T) {
			s := newTestSet(t, RoundRobin, SetOptions{}, nil)
			s.Update(testSpecs(4, weights...))
			p := s.Pool()
			s.Backend("b02").SetHealth(false, "refused") // p is now stale
			for range 20 {
				var buf [3]*Backend
				order := p.Order(netip.Addr{}, buf[:0])
				if len(order) != 3 {
					t.Fatalf("order %v, want 3 backends", ids(order))
				}
				checkDistinct(t, order)
				m := p.Members()
				first := slices.Index(m, order[0])
				want := []*Backend{}
				for i := 0; len(want) < 3; i++ {
					if b := m[(first+i)%4]; b.ID() != "b02" {
						want = append(want, b)
					}
				}
				if !slices.Equal(order, want) {
					t.Fatalf("order %v, want %v", ids(order), ids(want))
				}
			}
		})
	}
}

func weightSum(ws []int) int {
	s := 0
	for _, w := range ws {
		s += w
	}
	return s
}

func seqWeights(n int) []int {
	ws := make([]int, n)
	for i := range ws {
		ws[i] = i + 1
	}
	return ws
}

// maxCyclicRun is the longest run of one value, with the sequence repeated.
func maxCyclicRun(seq []int) int {
	best, run := 0, 0
	for k := range 2 * len(seq) {
		if k > 0 && seq[k%len(seq)] == seq[(k-1)%len(seq)] {
			run++
		} else {
			run = 1
		}
		best = max(best, min(run, len(seq)))
	}
	return best
}
