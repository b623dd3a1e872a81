//go:build linux

package health

import (
	"context"
	"sync"
)

// The process runs one check loop for every monitor, as HAProxy runs the
// checks of all its backends as tasks of the same threads: with a loop per
// service, a hundred services whose probes fall on the same grid point
// woke a hundred goroutines, each on a thread of its own, where one wake-up
// serves them all. The loop starts with the first running monitor and ends
// with the last, so a process without health checks runs none and a
// library user has nothing to wire.
var shared struct {
	mu  sync.Mutex
	cur *sharedLoop // the loop new monitors join; nil when none runs
}

// sharedLoop is one check loop and the monitors that use it.
type sharedLoop struct {
	loop   *checkLoop
	users  int // guarded by shared.mu
	cancel context.CancelFunc
	done   chan struct{} // closed when run has returned
	err    error         // run's error; read once done is closed
}

// acquireLoop returns the running shared loop, starting one if none runs
// or the last one failed. Each acquireLoop is paired with a releaseLoop.
func acquireLoop() (*sharedLoop, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if s := shared.cur; s != nil {
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
	s := &sharedLoop{loop: loop, users: 1, cancel: cancel, done: make(chan struct{})}
	go func() {
		s.err = loop.run(ctx)
		close(s.done)
	}()
	shared.cur = s
	return s, nil
}

// releaseLoop ends a monitor's use of s; the last user stops the loop and
// waits until its sockets are closed and its goroutine probes have ended.
func releaseLoop(s *sharedLoop) {
	shared.mu.Lock()
	s.users--
	last := s.users == 0
	if last && shared.cur == s {
		shared.cur = nil
	}
	shared.mu.Unlock()
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
