package backends

import (
	"fmt"
	"runtime"
	"testing"
	"unsafe"

	"github.com/tierlb/tierlb/internal/testkit"
)

// TestMemoryPerBackend guards what a backend costs in a set once it is in
// the pool: its runtime object, and its place in the set's list and in the
// pool snapshot. Its spec is the caller's, given with UpdateOwned as Docker
// discovery gives it, and made before the measure; Update copies the list
// first, a spec more per backend. The bound is in bytes of live heap, so
// machine speed does not matter; a backend that grows a field or an eager
// per-backend allocation trips it.
func TestMemoryPerBackend(t *testing.T) {
	// Backend's fields fill the 96-byte size class; one more word would
	// cost 16 B per backend.
	if size := unsafe.Sizeof(Backend{}); size > 96 {
		t.Errorf("Backend is %d B, want at most 96", size)
	}
	const n = 10000
	for _, policy := range []Policy{RoundRobin, LeastConn, Random2} {
		for _, owned := range []bool{true, false} {
			name, bound := string(policy)+"/owned", maxBytesPerBackend
			if !owned {
				name, bound = string(policy)+"/copied", maxBytesPerBackend+int(unsafe.Sizeof(Spec{}))
			}
			t.Run(name, func(t *testing.T) {
				specs := make([]Spec, n)
				for i := range specs {
					specs[i] = Spec{ID: fmt.Sprintf("web-%d", i), Address: fmt.Sprintf("10.0.%d.%d:8080", i/250, i%250), Weight: 1}
				}
				var set *Set
				live := testkit.LiveHeap(func() any {
					set = NewSet("web", policy, SetOptions{})
					if owned {
						set.UpdateOwned(specs)
					} else {
						set.Update(specs)
					}
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
				t.Logf("%s: %d backends keep %d B of live heap: %.0f B per backend", name, n, live, per)
				if per > float64(bound) {
					t.Errorf("%.0f B of live heap per backend, want at most %d", per, bound)
				}
			})
		}
	}
}

// maxBytesPerBackend bounds TestMemoryPerBackend: Backend (96 B, its spec
// the caller's) and its slot in the set's sorted slice, which the pool
// shares; leastconn and random2 pools keep a weight per member too. A cold
// state made eagerly (96 B), dial error counts made eagerly (32 B), a spec
// copied per backend (120 B) or an index map per set trips it.
const maxBytesPerBackend = 130
