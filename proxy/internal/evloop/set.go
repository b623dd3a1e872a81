//go:build linux

package evloop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
)

// Set is a process's event loops. Services hold it while they have
// sockets or connections in it (Acquire, Release); the loops stop once
// the context given to Run is done and no service holds the set.
type Set struct {
	loops []*Loop

	mu      sync.Mutex
	holders int
	ended   bool          // Run's context is done
	stopped bool          // the loops are stopping: no more holders
	stop    chan struct{} // closed when stopped turns true
	done    chan struct{} // closed when Run returns
}

// NewSet makes n loops (at least one). They run once Run is called; work
// posted before waits for it.
func NewSet(n int, log *slog.Logger) (*Set, error) {
	return NewSetWith(n, log, true)
}

// NewSetWith is NewSet, with rings telling the loops' drivers whether to
// batch through io_uring (Loop.Rings).
func NewSetWith(n int, log *slog.Logger, rings bool) (*Set, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Set{stop: make(chan struct{}), done: make(chan struct{})}
	for i := range max(n, 1) {
		l, err := newLoop(i, log)
		if err != nil {
			for _, l := range s.loops {
				l.closeFDs()
			}
			return nil, fmt.Errorf("event loop %d: %w", i, err)
		}
		l.rings = rings
		s.loops = append(s.loops, l)
	}
	return s, nil
}

// Hold acquires set for a service. A nil set means the service runs loops
// of its own: Hold makes a set of n and runs it until its one holder
// releases it. It returns the set now held.
func Hold(set *Set, n int, log *slog.Logger) (*Set, error) {
	own := set == nil
	if own {
		var err error
		if set, err = NewSet(n, log); err != nil {
			return nil, err
		}
	}
	if !set.Acquire() {
		return nil, errors.New("the event loops have stopped")
	}
	if own {
		// Stops as soon as the service lets go of it.
		ended, cancel := context.WithCancel(context.Background())
		cancel()
		go set.Run(ended)
	}
	return set, nil
}

// Loops returns the set's loops, in a fixed order.
func (s *Set) Loops() []*Loop { return s.loops }

// Len is how many loops the set has.
func (s *Set) Len() int { return len(s.loops) }

// Run runs the loops until ctx is done and every holder has released the
// set, then stops them, which ends what their drivers still hold, and
// returns nil once they have closed their descriptors.
func (s *Set) Run(ctx context.Context) error {
	defer close(s.done)
	procs := int32(runtime.GOMAXPROCS(0))
	running.Add(int32(len(s.loops)))
	defer running.Add(-int32(len(s.loops)))
	awake.Add(int32(len(s.loops)))
	defer awake.Add(-int32(len(s.loops)))
	var wg sync.WaitGroup
	for _, l := range s.loops {
		l.procs = procs
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.run()
		}()
	}
	select {
	case <-ctx.Done():
		s.mu.Lock()
		s.ended = true
		s.maybeStop()
		s.mu.Unlock()
	case <-s.stop:
	}
	<-s.stop
	for _, l := range s.loops {
		l.Post(func() { l.stopping = true })
	}
	wg.Wait()
	return nil
}

// Acquire holds the set for a service; false once the loops are stopping.
func (s *Set) Acquire() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return false
	}
	s.holders++
	return true
}

// Release gives back a hold. The last one after Run's context ended
// returns once the loops have stopped. Never from a loop's goroutine.
func (s *Set) Release() {
	s.mu.Lock()
	s.holders--
	last := s.maybeStop()
	s.mu.Unlock()
	if last {
		<-s.done
	}
}

// maybeStop stops the loops once nothing holds them any more; true if
// it did.
func (s *Set) maybeStop() bool {
	if s.ended && s.holders <= 0 && !s.stopped {
		s.stopped = true
		close(s.stop)
		return true
	}
	return false
}

// Each runs fn in every loop, one after the other, and waits; loops that
// have stopped are skipped. Not for the data path: it allocates.
func (s *Set) Each(fn func(l *Loop)) {
	for _, l := range s.loops {
		l.Call(func() { fn(l) })
	}
}

// All runs fn in every loop at once and waits for all of them.
func (s *Set) All(fn func(l *Loop)) {
	var wg sync.WaitGroup
	for _, l := range s.loops {
		wg.Add(1)
		if !l.Post(func() { fn(l); wg.Done() }) {
			wg.Done()
		}
	}
	wg.Wait()
}
