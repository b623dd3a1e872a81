package backends

import (
	"fmt"
	"runtime"
	"testing"
	"unsafe"

	"github.com/tierlb/tierlb/internal/testkit"
)

// TestMemoryPerBackend guards what a backend costs in a set once it is in
// the pool: its runtime object with its own copy of the spec, and its place
// in the set's list and in the pool snapshot. The specs' strings belong to the
// caller and are made before the measure. The bound is in bytes of live
// heap, so machine speed does not matter; a backend that grows a field
// or an eager per-backend allocation trips it.
func TestMemoryPerBackend(t *testing.T) {
	// Backend's fields fill the 208-byte size class; one more word
	// would cost 16 B per backend.
	if size := unsafe.Sizeof(Backend{}); size > 208 {
		t.Errorf("Backend is %d B, want at most 208", size)
	}
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
			// The specs must outlive the measure: freed inside it, they
			// would be counted against the backends.
			runtime.KeepAlive(specs)
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

// maxBytesPerBackend bounds TestMemoryPerBackend: Backend with its spec
// inline (208 B) and its slot in the set's sorted slice, which the pool
// shares, measured 212 B (221 for leastconn and random2, whose pools keep
// a weight per member). A cold state made eagerly (96 B), dial error counts
// made eagerly (32 B) or an index map per set trips it.
const maxBytesPerBackend = 240
