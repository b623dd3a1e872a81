package backends

import (
	"fmt"
	"testing"

	"github.com/tierlb/tierlb/internal/testkit"
)

// TestMemoryPerBackend guards what a backend costs in a set once it is in
// the pool: its runtime object, its own copy of the spec, the set's index
// and its place in the pool snapshot. The specs' strings belong to the
// caller and are made before the measure. The bound is in bytes of live
// heap, so machine speed does not matter; a backend that grows a field
// or an eager per-backend allocation trips it.
func TestMemoryPerBackend(t *testing.T) {
	const n = 10000
	for _, policy := range []Policy{RoundRobin, LeastConn, Random2} {
		t.Run(string(policy), func(t *testing.T) {
			specs := make([]Spec, n)
			for i := range specs {
				specs[i] = Spec{ID: fmt.Sprintf("web-%d", i), Address: fmt.Sprintf("10.0.%d.%d:8080", i/250, i%250), Weight: 1}
			}
			var set *Set
			live := testkit.LiveHeap(func() any {
				set = NewSet("web", policy, SetOptions{})
				set.Update(specs)
				return set
			})
			t.Cleanup(set.Close)
			if got := set.Pool().Len(); got != n {
				t.Fatalf("pool has %d backends, want %d", got, n)
			}
			per := float64(live) / n
			t.Logf("%s: %d backends keep %d B of live heap: %.0f B per backend", policy, n, live, per)
			if per > maxBytesPerBackend {
				t.Errorf("%.0f B of live heap per backend, want at most %d", per, maxBytesPerBackend)
			}
		})
	}
}

// maxBytesPerBackend bounds TestMemoryPerBackend: Backend (224 B), its spec
// (128 B), the set's index entry and the pool's slots measured 348 B; an
// eager context per backend made it 440.
const maxBytesPerBackend = 400
