package proxy

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// engineEnv chooses the data-path engine of every Service of the process:
// "epoll" (the default) or "goroutine". It is read by NewService, so the
// bench compares engines by starting tierlb with it set.
const engineEnv = "TIERLB_ENGINE"

// engineKind is which machinery moves a service's connections.
type engineKind uint8

const (
	// engineGoroutine: Go's netpoller, a goroutine per direction.
	engineGoroutine engineKind = iota
	// engineEpoll: event loops on epoll (one per P, see ReserveProc),
	// HAProxy-style; no goroutine and no net.Conn per connection.
	engineEpoll
)

func (k engineKind) String() string {
	if k == engineEpoll {
		return "epoll"
	}
	return "goroutine"
}

// engineFromEnv reads engineEnv. The epoll engine is the default: it
// passes the whole proxy suite and cmd/tierlb's, and on the bench it costs
// less CPU per request, per connection and per GB than the goroutine path,
// 4 syscalls per small request instead of 6, and 0.4 KB instead of 14.5 KB
// per idle connection.
func engineFromEnv() (engineKind, error) {
	switch v := os.Getenv(engineEnv); v {
	case "", "epoll":
		return engineEpoll, nil
	case "goroutine":
		return engineGoroutine, nil
	default:
		return 0, fmt.Errorf("%s=%q: want epoll or goroutine", engineEnv, v)
	}
}

// engine is a service's set of event loops. They share the listening
// socket, registered in each loop with EPOLLEXCLUSIVE so that one loop
// wakes per connection, and each loop keeps the connections it accepted.
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
	wait := waitFromEnv()
	for range max(n, 1) {
		l, err := newLoop(e, wait)
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
		acks := make(chan int, len(e.loops))
		posted := 0
		for _, l := range e.loops {
			if l.post(request{kind: reqStopAccept, done: acks}) {
				posted++
			}
		}
		for range posted {
			<-acks
		}
		unix.Close(e.lfd)
		close(e.lnClosed)
	})
}

// abortAll ends every connection with reason and returns how many.
func (e *engine) abortAll(reason string) int {
	acks := make(chan int, len(e.loops))
	posted := 0
	for _, l := range e.loops {
		if l.post(request{kind: reqAbortAll, end: reason, done: acks}) {
			posted++
		}
	}
	n := 0
	for range posted {
		n += <-acks
	}
	return n
}

// stop ends the loops, which close their descriptors, and waits for them.
func (e *engine) stop() {
	e.closeListener()
	e.stopOnce.Do(func() {
		acks := make(chan int, len(e.loops))
		for _, l := range e.loops {
			l.post(request{kind: reqStop, done: acks})
		}
		e.wg.Wait()
	})
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

// serveEpoll is Serve for the epoll engine: the loops accept until ctx is
// done or the listener is closed.
func (s *Service) serveEpoll(ctx context.Context) error {
	s.mu.Lock()
	if s.lnClosed || s.eng != nil {
		s.mu.Unlock()
		return nil
	}
	n := s.loops
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	e, err := newEngine(s, s.ln, n)
	if err != nil {
		s.mu.Unlock()
		return fmt.Errorf("serve %s: %w", s.name, err)
	}
	s.eng = e
	s.mu.Unlock()
	e.start()
	stop := context.AfterFunc(ctx, s.closeListener)
	defer stop()
	<-e.lnClosed
	return nil
}

// ReserveProc readies the Go runtime for the epoll engine, whose loops
// sleep in blocking epoll_wait calls: it raises
// GOMAXPROCS by one and returns the former value, the number of loops each
// service should run (Options.Loops). Call it once, before serving.
//
// The spare P is what keeps a sleeping loop's P with it. The scheduler's
// monitor (sysmon) takes the P of a goroutine in a system call away after
// 20µs unless some P is idle, and then polls every 20µs; the loop's next
// wakeup must find a P again. With a P to spare neither happens, and a
// loop wakes straight from the kernel, as HAProxy's threads do. Measured
// on the bench (64 keep-alive connections, 2 cores): 1.38 CPU seconds per
// 100k requests with the spare P, 1.54 without; p99 2.6 ms either way.
//
// It changes nothing and returns 0 when GOMAXPROCS is set in the
// environment (the user's choice stands) or when the engine in use does
// not sleep in epoll_wait (TIERLB_ENGINE=goroutine, TIERLB_EPOLL_WAIT=netpoll).
// Setting GOMAXPROCS stops the runtime from following later changes of the
// container's CPU limit.
//
// Later calls return what the first returned.
func ReserveProc() int {
	reserve.Do(func() {
		if os.Getenv("GOMAXPROCS") != "" {
			return
		}
		if kind, err := engineFromEnv(); err != nil || kind != engineEpoll || waitFromEnv() != waitThread {
			return
		}
		reserve.loops = runtime.GOMAXPROCS(0)
		runtime.GOMAXPROCS(reserve.loops + 1)
	})
	return reserve.loops
}

var reserve struct {
	sync.Once
	loops int
}
