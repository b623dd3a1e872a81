package proxy

import (
	"runtime"
	"testing"
)

// TestMessagesAllocateNothing: once a connection is open, moving messages
// both ways allocates nothing in the process: not in the loop (the proxy),
// and not in this test's client and echo backend, which reuse their
// buffers. A regression on the data path shows up as one or more
// allocations per round trip.
func TestMessagesAllocateNothing(t *testing.T) {
	for _, mode := range copyModes {
		t.Run(mode.name, func(t *testing.T) {
			be := startBackend(t, echo)
			s := startService(t, Config{ZeroCopy: mode.zeroCopy}, staticSet(t, be.addr()))
			c := dial(t, s)
			msg := []byte("a small request, a small answer")
			buf := make([]byte, len(msg))
			trip := func() {
				if _, err := c.Write(msg); err != nil {
					t.Fatal(err)
				}
				if _, err := c.Read(buf[:cap(buf)]); err != nil {
					t.Fatal(err)
				}
			}
			for range 200 { // warm: free lists, the loop's tables
				trip()
			}
			const n = 2000
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for range n {
				trip()
			}
			runtime.ReadMemStats(&after)
			per := float64(after.Mallocs-before.Mallocs) / n
			t.Logf("%.3f allocations per round trip", per)
			// Some runtime work (timers, the GC's own) may allocate meanwhile;
			// a data-path allocation is at least one per round trip.
			if per > 0.1 {
				t.Errorf("%.3f allocations per round trip, want none", per)
			}
		})
	}
}
