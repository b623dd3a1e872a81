//go:build linux

package proxy

import (
	"fmt"
	"net"
	"sync"

	"golang.org/x/sys/unix"
)

// engine is a service's set of event loops. They share the listening
// socket, registered in each loop with EPOLLEXCLUSIVE so that one loop
// wakes per connection, and each loop keeps the connections it serves.
type engine struct {
	s     *Service
	lfd   int
	loops []*loop
	wg    sync.WaitGroup // loop goroutines

	lnOnce   sync.Once
	lnClosed chan struct{} // the listening socket is closed
	stopOnce sync.Once
}

// newEngine takes over the service's listener: the socket is duplicated
// for the loops and Go's own descriptor is closed, so that Go's netpoller
// stops hearing about every new connection.
func newEngine(s *Service, ln *net.TCPListener, n int) (*engine, error) {
	rc, err := ln.SyscallConn()
	if err != nil {
		return nil, err
	}
	lfd := -1
	var derr error
	if err := rc.Control(func(fd uintptr) {
		lfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, fmt.Errorf("duplicate listener: %w", derr)
	}
	e := &engine{s: s, lfd: lfd, lnClosed: make(chan struct{})}
	for range max(n, 1) {
		l, err := newLoop(e)
		if err != nil {
			for _, l := range e.loops {
				l.closeFDs()
			}
			unix.Close(lfd)
			return nil, err
		}
		e.loops = append(e.loops, l)
	}
	_ = ln.Close()
	return e, nil
}

func (e *engine) start() {
	for _, l := range e.loops {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			l.run()
		}()
	}
}

// leastLoaded returns the loop to serve a connection that l accepted: l
// itself unless another holds fewer connections by more than 1/8 of l's.
func (e *engine) leastLoaded(l *loop) *loop {
	mine := l.load.Load()
	best, least := l, mine-mine/8
	for _, o := range e.loops {
		if n := o.load.Load(); n < least {
			best, least = o, n
		}
	}
	return best
}

// closeListener takes the listener out of every loop, then closes it.
// When it returns no loop accepts any more, so no connection is added
// after it: Shutdown relies on that.
func (e *engine) closeListener() {
	e.lnOnce.Do(func() {
		e.broadcast(request{kind: reqStopAccept})
		unix.Close(e.lfd)
		close(e.lnClosed)
	})
}

// abortAll ends every connection with reason and returns how many.
func (e *engine) abortAll(reason string) int {
	return e.broadcast(request{kind: reqAbortAll, end: reason})
}

// stop ends the loops, which close their descriptors, and waits for them.
func (e *engine) stop() {
	e.closeListener()
	e.stopOnce.Do(func() {
		e.broadcast(request{kind: reqStop})
		e.wg.Wait()
	})
}

// broadcast posts r to every loop that still runs, waits until each has
// handled it, and returns the sum of their answers.
func (e *engine) broadcast(r request) int {
	acks := make(chan int, len(e.loops))
	r.done = acks
	posted := 0
	for _, l := range e.loops {
		if l.post(r) {
			posted++
		}
	}
	n := 0
	for range posted {
		n += <-acks
	}
	return n
}

// call runs fn in each loop in turn and waits for it; false if a loop has
// stopped. For inspection (tests), never on the data path.
func (e *engine) call(fn func(l *loop)) bool {
	for _, l := range e.loops {
		done := make(chan int, 1)
		if !l.post(request{kind: reqCall, fn: func() { fn(l) }, done: done}) {
			return false
		}
		<-done
	}
	return true
}
