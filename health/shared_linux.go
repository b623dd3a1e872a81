//go:build linux

package health

import (
	"context"
	"sync"
)

// Checks is a process's check loop, shared by every monitor given it
// (Options.Checks), as HAProxy runs the checks of all its backends as tasks
// of the same threads: with a loop per service, a hundred services whose
// probes fall on the same grid point woke a hundred goroutines, each on a
// thread of its own, where one wake-up serves them all. The loop starts
// with the first running monitor and ends with the last, so a process
// without health checks runs none and nothing else stops it.
type Checks struct {
	mu  sync.Mutex
	cur *sharedLoop // the loop new monitors join; nil when none runs
}

// NewChecks returns a process's check loop, not running yet.
func NewChecks() *Checks { return &Checks{} }

// sharedLoop is one check loop and the monitors that use it.
type sharedLoop struct {
	loop   *checkLoop
	users  int // guarded by Checks.mu
	cancel context.CancelFunc
	done   chan struct{} // closed when run has returned
	err    error         // run's error; read once done is closed
	// ended is done as a context, for context.AfterFunc: a monitor learns
	// of a broken loop without a goroutine parked on done.
	ended context.Context
}

// acquire returns the running loop, starting one if none runs or the last
// one failed. Each acquire is paired with a release.
func (c *Checks) acquire() (*sharedLoop, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.cur; s != nil {
		select {
		case <-s.done: // failed: its users see it and leave
		default:
			s.users++
			return s, nil
		}
	}
	loop, err := newCheckLoop()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	ended, end := context.WithCancel(context.Background())
	s := &sharedLoop{loop: loop, users: 1, cancel: cancel, done: make(chan struct{}), ended: ended}
	go func() {
		s.err = loop.run(ctx)
		close(s.done)
		end()
	}()
	c.cur = s
	return s, nil
}

// release ends a monitor's use of s; the last user stops the loop and
// waits until its sockets are closed and its goroutine probes have ended.
func (c *Checks) release(s *sharedLoop) {
	c.mu.Lock()
	s.users--
	last := s.users == 0
	if last && c.cur == s {
		c.cur = nil
	}
	c.mu.Unlock()
	if last {
		s.cancel()
		<-s.done
	}
}

// sync returns once the loop has applied every request posted before it,
// or has ended.
func (s *sharedLoop) sync() {
	done := make(chan struct{})
	if !s.loop.post(loopCmd{op: cmdSync, done: done}) {
		return
	}
	select {
	case <-done:
	case <-s.done:
	}
}
