//go:build linux

package proxy

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tierlb/tierlb/proxy/internal/wake"
)

const (
	maxEvents = 256
	// genReserved tags the epoll registrations of the listener and the
	// eventfd; connection generations skip it.
	genReserved = ^uint32(0)
	// yieldEvery is how often a busy loop yields to Go's scheduler. A
	// goroutine that has not been through the scheduler for 10 ms is
	// preempted by the runtime's monitor (sysmon) with a signal, and if
	// it sleeps in epoll_wait then, its P is taken away and the monitor
	// goes back to polling every 20µs. A loop that yields first is left
	// alone, and the monitor sleeps.
	yieldEvery = 8 * time.Millisecond
	// connEvents: edge-triggered, so a registration is made once per
	// socket and never modified; EPOLLRDHUP so a FIN behind data is seen
	// without a read that returns 0.
	connEvents = unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET
)

// loop is one event loop: a goroutine sleeping in epoll_wait on its own
// epoll instance, owning the connections it serves. Nothing of a loop is
// shared but its request queue and its load counter.
type loop struct {
	e    *engine
	s    *Service
	epfd int
	lfd  int // the listening socket while registered here; -1 after

	base    time.Time
	now     int64 // ns since base, read once per wakeup
	yieldAt int64 // when the loop next yields to the scheduler

	events [maxEvents]unix.EpollEvent
	ev     unix.EpollEvent // epoll_ctl's argument
	buf    [bufSize]byte   // every small message passes through here
	rsa    unix.RawSockaddrAny
	rlen   uint32

	fds    []*conn // by descriptor
	live   []*conn // open connections, for drain and tests
	timers []*conn // min-heap on when
	again  []work  // directions that used their budget with data left
	free   freeLists

	gen          uint32 // the latest connection generation
	acceptPaused bool
	resumeAt     int64
	backoff      time.Duration
	stopping     bool

	// load is how many connections the loop holds or has been handed;
	// other loops read it to place new connections.
	load atomic.Int32

	// reqs is what other goroutines ask of the loop (request.go).
	reqs wake.Queue[request]
}

// work names a direction to continue after other connections had a turn.
type work struct {
	c   *conn
	gen uint32
	up  bool
}

func newLoop(e *engine) (*loop, error) {
	l := &loop{e: e, s: e.s, lfd: e.lfd, base: time.Now()}
	var err error
	if l.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("create epoll: %w", err)
	}
	if err = l.reqs.Open(); err != nil {
		unix.Close(l.epfd)
		return nil, fmt.Errorf("create eventfd: %w", err)
	}
	if err := l.ctl(unix.EPOLL_CTL_ADD, l.reqs.FD(), unix.EPOLLIN, genReserved); err != nil {
		l.closeFDs()
		return nil, fmt.Errorf("register eventfd: %w", err)
	}
	// EPOLLEXCLUSIVE: one loop is woken per new connection, not all.
	if err := l.ctl(unix.EPOLL_CTL_ADD, l.lfd, unix.EPOLLIN|unix.EPOLLEXCLUSIVE, genReserved); err != nil {
		l.closeFDs()
		return nil, fmt.Errorf("register listener: %w", err)
	}
	return l, nil
}

func (l *loop) ctl(op, fd int, events uint32, gen uint32) error {
	l.ev = unix.EpollEvent{Events: events, Fd: int32(fd), Pad: int32(gen)}
	return sysEpollCtl(l.epfd, op, fd, &l.ev)
}

// clock reads the loop's clock now.
func (l *loop) clock() int64 { return int64(time.Since(l.base)) }

// run is the loop. It sleeps in a blocking epoll_wait, so the kernel, not
// Go's scheduler, wakes it when a socket is ready. The goroutine is not
// locked to its thread: the scheduler preempts a loop that stays busy for
// 10 ms, and a locked goroutine would pay two futex handoffs to get its
// thread back.
func (l *loop) run() {
	defer l.closeFDs()
	for !l.stopping {
		n, err := unix.EpollWait(l.epfd, l.events[:], l.waitMillis())
		l.now = l.clock()
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			l.s.log.Error("epoll_wait failed: loop stopped", "err", err)
			l.abortAll("error: epoll_wait: " + err.Error())
			return
		}
		for i := range n {
			l.dispatch(&l.events[i])
		}
		l.runAgain()
		l.expire()
		if l.now >= l.yieldAt {
			l.yieldAt = l.now + int64(yieldEvery)
			runtime.Gosched()
		}
	}
}

func (l *loop) dispatch(ev *unix.EpollEvent) {
	fd := int(ev.Fd)
	if uint32(ev.Pad) == genReserved {
		switch fd {
		case l.reqs.FD():
			l.requests()
		case l.lfd:
			if !l.acceptPaused {
				l.acceptSome()
			}
		}
		return
	}
	if fd >= len(l.fds) {
		return
	}
	c := l.fds[fd]
	if c == nil || c.gen != uint32(ev.Pad) {
		return // a socket closed earlier in this batch; its number may be reused
	}
	l.event(c, fd, ev.Events)
}

// abortAll ends every connection of the loop and returns how many.
func (l *loop) abortAll(end string) int {
	n := len(l.live)
	for len(l.live) > 0 {
		c := l.live[len(l.live)-1]
		c.setEnd(end)
		l.finish(c)
	}
	return n
}

// abortService ends the loop's connections of svc and returns how many.
func (l *loop) abortService(svc *Service, end string) int {
	n := 0
	for i := len(l.live) - 1; i >= 0; i-- {
		// finish moves the last connection into i: go down from the end.
		if i < len(l.live) && l.live[i].svc == svc {
			c := l.live[i]
			c.setEnd(end)
			l.finish(c)
			n++
		}
	}
	return n
}

// closeFDs marks the loop closed for posters, then closes its descriptors
// and idle pipes. The listener belongs to the engine.
func (l *loop) closeFDs() {
	l.reqs.Close()
	unix.Close(l.epfd)
	l.free.closePipes()
}

// track registers an accepted connection with the loop.
func (l *loop) track(c *conn) {
	c.liveIdx = int32(len(l.live))
	l.live = append(l.live, c)
	l.load.Add(1)
	l.setFD(int(c.cfd), c)
}

func (l *loop) untrack(c *conn) {
	i := int(c.liveIdx)
	last := len(l.live) - 1
	l.live[i] = l.live[last]
	l.live[i].liveIdx = int32(i)
	l.live[last] = nil
	l.live = l.live[:last]
	l.load.Add(-1)
}

// setFD maps a descriptor to its connection for event dispatch.
func (l *loop) setFD(fd int, c *conn) {
	if fd >= len(l.fds) {
		n := max(2*len(l.fds), fd+1, 1024)
		fds := make([]*conn, n)
		copy(fds, l.fds)
		l.fds = fds
	}
	l.fds[fd] = c
}
