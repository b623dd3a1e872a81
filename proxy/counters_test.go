//go:build linux

package proxy

import (
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tierlb/tierlb/internal/testkit"
)

// TestLiveCounters: a connection moving 1 KB/s, far below any batch size,
// shows in its backend's byte counters, each way, while it is open; once
// it closes the counters hold its bytes exactly once. The test logs how
// far the counters lagged the bytes; it asserts only that they moved
// before the connection was done, which a machine's load cannot fake and
// counting at the end (or per MiB) cannot pass.
func TestLiveCounters(t *testing.T) {
	for _, mode := range copyModes {
		t.Run(mode.name, func(t *testing.T) {
			be := startBackend(t, echo)
			set := staticSet(t, be.addr())
			s := startService(t, Config{ZeroCopy: mode.zeroCopy}, set)
			c := dial(t, s)
			b := set.Backends()[0]

			// 100 bytes and their echo every 100 ms, 30 times: 1 KB/s
			// each way for 3 s.
			const writes, size = 30, 100
			var at [writes]time.Time
			var done atomic.Int32 // writes echoed
			errc := make(chan error, 1)
			go func() {
				msg, reply := make([]byte, size), make([]byte, size)
				tick := time.NewTicker(100 * time.Millisecond)
				defer tick.Stop()
				for i := range writes {
					at[i] = time.Now()
					if _, err := c.Write(msg); err != nil {
						errc <- err
						return
					}
					if _, err := io.ReadFull(c, reply); err != nil {
						errc <- err
						return
					}
					done.Add(1)
					<-tick.C
				}
				errc <- nil
			}()

			var caught [writes]time.Time // when the counters first held write i
			movedEarly := false
			poll := func() {
				toB, toC := b.Bytes()
				n := int(min(toB, toC) / size)
				for i := 0; i < n && i < writes; i++ {
					if caught[i].IsZero() {
						caught[i] = time.Now()
					}
				}
				if n > 0 && int(done.Load()) < writes {
					movedEarly = true
				}
			}
			var werr error
		wait:
			for {
				select {
				case werr = <-errc:
					break wait
				case <-time.After(10 * time.Millisecond):
					poll()
				}
			}
			if werr != nil {
				t.Fatal(werr)
			}
			testkit.Eventually(t, 10*time.Second, "the counters to hold every byte", func() bool {
				poll()
				return !caught[writes-1].IsZero()
			})
			var worst time.Duration
			for i := range writes {
				worst = max(worst, caught[i].Sub(at[i]))
			}
			t.Logf("the counters held each write at most %v after it was sent (flushEvery %v)", worst.Round(time.Millisecond), flushEvery)
			if !movedEarly {
				t.Error("the byte counters did not move while the connection was moving bytes")
			}

			c.Close()
			testkit.Eventually(t, 5*time.Second, "the connection to close", func() bool { return s.Active() == 0 })
			if toB, toC := b.Bytes(); toB != writes*size || toC != writes*size {
				t.Errorf("after close: to_backend %d, to_client %d; want %d each, counted once", toB, toC, writes*size)
			}
		})
	}
}
