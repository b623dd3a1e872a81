package backends

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// Order runs from many goroutines while the pool is rebuilt under it by
// updates, health changes, ejections and operator states. Run with -race:
// the snapshot must be safe to read without a lock, and every order must
// stay well formed (distinct backends of this service, within cap).
func TestConcurrentOrderAndUpdates(t *testing.T) {
	for _, policy := range []Policy{RoundRobin, LeastConn, Random2, SourceHash} {
		t.Run(string(policy), func(t *testing.T) {
			s := newTestSet(t, policy, SetOptions{SlowStart: 50 * time.Millisecond, MaxConnsPerBackend: 50}, nil)
			all := testSpecs(8, 1, 2, 3, 1, 1, 2, 1, 1)
			s.Update(all[:6])

			const readers, picks = 6, 2000
			errs := make(chan error, readers)
			var wg sync.WaitGroup
			for r := range readers {
				wg.Go(func() {
					var buf [3]*Backend
					for i := range picks {
						order := s.Pool().Order(clientAddr(r*picks+i), buf[:0])
						if len(order) > 3 {
							errs <- fmt.Errorf("order of %d beyond cap 3", len(order))
							return
						}
						for k, b := range order {
							if b.Service() != "svc" || contains(order[:k], b) {
								errs <- fmt.Errorf("bad order %v", ids(order))
								return
							}
						}
						if len(order) > 0 {
							order[0].ConnOpened()
							order[0].ConnClosed(1, 1)
						}
					}
				})
			}
			writersDone := make(chan struct{})
			var writers sync.WaitGroup
			writers.Go(func() {
				for i := range 1_000_000 {
					select {
					case <-writersDone:
						return
					default:
					}
					s.Update(all[:6+i%3])
				}
			})
			writers.Go(func() {
				for i := range 1_000_000 {
					select {
					case <-writersDone:
						return
					default:
					}
					b := s.Backend(all[i%6].ID)
					switch i % 4 {
					case 0:
						b.SetHealth(false, "refused")
					case 1:
						b.SetHealth(true, "ok")
					case 2:
						b.Eject(time.Now().Add(time.Millisecond), "dial failures")
					case 3:
						b.SetAdminState([]State{StateMaint, StateDraining, StateUp}[i/4%3])
					}
				}
			})
			wg.Wait()
			close(writersDone)
			writers.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			for _, b := range s.Backends() {
				if b.Active() != 0 {
					t.Errorf("%s has %d open after every connection closed", b.ID(), b.Active())
				}
			}
		})
	}
}
