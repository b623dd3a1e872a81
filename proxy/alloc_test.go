package proxy

import (
	"net"
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

// TestBulkAllocatesNothing: a transfer larger than a direction's budget
// per wakeup (pumpBudget), so that the direction is continued after the
// loop's other work on every round (runAgain), allocates nothing either.
func TestBulkAllocatesNothing(t *testing.T) {
	const chunk = 4 << 20 // 16 budgets
	for _, mode := range copyModes {
		t.Run(mode.name, func(t *testing.T) {
			payload := make([]byte, chunk)
			// stream answers each byte it reads with a chunk.
			stream := func(c net.Conn) {
				var b [1]byte
				for {
					if _, err := c.Read(b[:]); err != nil {
						return
					}
					if _, err := c.Write(payload); err != nil {
						return
					}
				}
			}
			be := startBackend(t, stream)
			s := startService(t, Config{ZeroCopy: mode.zeroCopy}, staticSet(t, be.addr()))
			c := dial(t, s)
			buf := make([]byte, 256<<10)
			fetch := func() {
				if _, err := c.Write([]byte{'?'}); err != nil {
					t.Fatal(err)
				}
				for got := 0; got < chunk; {
					n, err := c.Read(buf)
					if err != nil {
						t.Fatal(err)
					}
					got += n
				}
			}
			for range 4 { // warm: free lists, pipes, the loop's tables
				fetch()
			}
			const n = 16
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for range n {
				fetch()
			}
			runtime.ReadMemStats(&after)
			per := float64(after.Mallocs-before.Mallocs) / (n * chunk >> 20)
			t.Logf("%.3f allocations per MiB", per)
			// A data-path allocation is at least one per round of the
			// loop, which moves at most pumpBudget per direction: several
			// per MiB.
			if per > 0.5 {
				t.Errorf("%.3f allocations per MiB, want none", per)
			}
		})
	}
}
