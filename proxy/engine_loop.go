package proxy

import (
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	maxEvents    = 256
	maxFreeConns = 1024 // recycled connection structs kept per loop
	maxFreeBufs  = 16   // idle pending buffers kept per loop
	maxFreePipes = 16   // idle pipes kept per loop while bursts come and go
	// pipeIdle: a loop whose pipes have neither been lent nor returned for
	// this long closes its idle ones. An unprivileged user's pipe budget
	// (fs.pipe-user-pages-soft, 64 MiB) counts pipes by capacity, idle or
	// not, and every loop of every service keeps its own: 16 idle 256 KiB
	// pipes on each of 2 loops of 3 services would hold 24 MiB of it.
	pipeIdle = time.Second
	// genReserved tags the epoll registrations of the listener and the
	// eventfd; connection generations skip it.
	genReserved = ^uint32(0)
	// connEvents: edge-triggered, so a registration is made once per
	// socket and never modified; EPOLLRDHUP so a FIN behind data is seen
	// without a read that returns 0.
	connEvents = unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET
)

// loop is one event loop: a goroutine waiting in epoll_wait on its own
// epoll instance, owning the connections it accepted. Nothing of a loop is
// shared but its request queue.
type loop struct {
	e    *engine
	s    *Service
	epfd int
	evfd int
	lfd  int // the listening socket while registered here; -1 after

	base time.Time
	now  int64 // ns since base, read once per wakeup

	wait    waitMode
	pf      *os.File        // waitNetpoll: the epoll fd in Go's netpoller
	prc     syscall.RawConn // its raw access, to park on
	parkFn  func(uintptr) bool
	polled  int // events found by parkFn
	pollErr error

	events [maxEvents]unix.EpollEvent
	ev     unix.EpollEvent // epoll_ctl's argument
	buf    [bufSize]byte   // every small message passes through here
	rsa    unix.RawSockaddrAny
	rlen   uint32
	one    [8]byte // eventfd counter

	fds       []*econn // by descriptor
	live      []*econn // open connections, for drain and tests
	timers    []*econn // min-heap on when
	again     []work   // directions that used their budget with data left
	pipeUsed  int64    // loop clock of the last pipe lent or returned
	freeConns []*econn
	freeBufs  []*[bufSize]byte
	freePipes []*pipe
	freeDials []*dialState

	gen          uint32 // the latest connection generation
	acceptPaused bool
	resumeAt     int64
	backoff      time.Duration
	stopping     bool

	// load is how many connections the loop holds or has been handed;
	// other loops read it to place new connections.
	load atomic.Int32

	mu     sync.Mutex // guards reqs and closed
	reqs   []request
	spare  []request
	closed bool
}

// work names a direction to continue after other connections had a turn.
type work struct {
	c   *econn
	gen uint32
	up  bool
}

type reqKind uint8

const (
	reqAbort      reqKind = iota // end one connection
	reqAbortAll                  // end every connection (drain deadline)
	reqResolved                  // a backend name was resolved
	reqStopAccept                // deregister the listener
	reqStop                      // leave the loop
	reqCall                      // run fn in the loop (tests, inspection)
	reqAdopt                     // serve a connection another loop accepted
)

// request is a message from another goroutine to a loop.
type request struct {
	kind reqKind
	c    *econn
	gen  uint32
	end  string
	rst  bool
	ap   netip.AddrPort
	err  error
	fn   func()
	fd   int // reqAdopt: the accepted socket
	done chan<- int
}

func newLoop(e *engine, wait waitMode) (*loop, error) {
	l := &loop{e: e, s: e.s, lfd: e.lfd, base: time.Now(), wait: wait}
	var err error
	if l.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("create epoll: %w", err)
	}
	if l.evfd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		unix.Close(l.epfd)
		return nil, fmt.Errorf("create eventfd: %w", err)
	}
	if err := l.ctl(unix.EPOLL_CTL_ADD, l.evfd, unix.EPOLLIN, genReserved); err != nil {
		l.closeFDs()
		return nil, fmt.Errorf("register eventfd: %w", err)
	}
	// EPOLLEXCLUSIVE: one loop is woken per new connection, not all.
	if err := l.ctl(unix.EPOLL_CTL_ADD, l.lfd, unix.EPOLLIN|unix.EPOLLEXCLUSIVE, genReserved); err != nil {
		l.closeFDs()
		return nil, fmt.Errorf("register listener: %w", err)
	}
	if wait == waitNetpoll {
		if err := l.initPark(); err != nil {
			l.closeFDs()
			return nil, fmt.Errorf("register epoll fd with the netpoller: %w", err)
		}
	}
	return l, nil
}

func (l *loop) ctl(op, fd int, events uint32, gen uint32) error {
	l.ev = unix.EpollEvent{Events: events, Fd: int32(fd), Pad: int32(gen)}
	return sysEpollCtl(l.epfd, op, fd, &l.ev)
}

// clock reads the loop's clock now.
func (l *loop) clock() int64 { return int64(time.Since(l.base)) }

// run is the loop. In waitThread mode it sleeps in a blocking epoll_wait,
// so the kernel, not the Go scheduler, wakes it when a socket is ready.
func (l *loop) run() {
	if l.wait == waitNetpoll {
		l.runNetpoll()
		return
	}
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
	}
}

func (l *loop) dispatch(ev *unix.EpollEvent) {
	fd := int(ev.Fd)
	if uint32(ev.Pad) == genReserved {
		switch fd {
		case l.evfd:
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

// post queues a request and wakes the loop when the queue was empty. It
// returns false once the loop has stopped.
func (l *loop) post(r request) bool {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return false
	}
	l.reqs = append(l.reqs, r)
	wake := len(l.reqs) == 1
	l.mu.Unlock()
	if wake {
		one := [8]byte{1}
		_, _ = unix.Write(l.evfd, one[:])
	}
	return true
}

// requests runs the queued requests. The eventfd is read before the queue
// is taken, so a request posted meanwhile wakes the next epoll_wait.
func (l *loop) requests() {
	_, _ = unix.Read(l.evfd, l.one[:])
	l.mu.Lock()
	reqs := l.reqs
	l.reqs = l.spare[:0]
	l.mu.Unlock()
	for i := range reqs {
		l.handle(&reqs[i])
		reqs[i] = request{}
	}
	l.spare = reqs[:0]
}

func (l *loop) handle(r *request) {
	switch r.kind {
	case reqAbort:
		if r.c.gen == r.gen && r.c.state != stateClosed {
			r.c.setEnd(r.end)
			r.c.rst = r.c.rst || r.rst
			l.finish(r.c)
		}
	case reqAbortAll:
		r.done <- l.abortAll(r.end)
	case reqResolved:
		if r.c.gen == r.gen && r.c.state == stateResolving {
			l.resolved(r.c, r.ap, r.err)
		}
	case reqStopAccept:
		l.stopAccept()
		r.done <- 0
	case reqStop:
		l.stopping = true
		r.done <- l.abortAll(EndDrain)
	case reqCall:
		r.fn()
		r.done <- 0
	case reqAdopt:
		l.adopt(r.fd, r.ap)
	}
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

// closeFDs marks the loop closed for posters, then closes its descriptors
// and idle pipes. The listener belongs to the engine.
func (l *loop) closeFDs() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	unix.Close(l.evfd)
	if l.pf != nil {
		l.pf.Close()
	} else {
		unix.Close(l.epfd)
	}
	for _, p := range l.freePipes {
		p.close()
	}
	l.freePipes = nil
}

func (l *loop) getBuf() *[bufSize]byte {
	if n := len(l.freeBufs); n > 0 {
		b := l.freeBufs[n-1]
		l.freeBufs = l.freeBufs[:n-1]
		return b
	}
	return new([bufSize]byte)
}

func (l *loop) putBuf(b *[bufSize]byte) {
	if len(l.freeBufs) < maxFreeBufs {
		l.freeBufs = append(l.freeBufs, b)
	}
}

// getPipe lends an empty pipe. Creation goes through the service's pipe
// pool's constructor, so tests can make it fail.
func (l *loop) getPipe() (*pipe, error) {
	l.pipeUsed = l.now
	if n := len(l.freePipes); n > 0 {
		p := l.freePipes[n-1]
		l.freePipes = l.freePipes[:n-1]
		return p, nil
	}
	return l.s.cp.pipes.newPipe()
}

func (l *loop) putPipe(p *pipe) {
	l.pipeUsed = l.now
	if len(l.freePipes) < maxFreePipes && !l.stopping {
		l.freePipes = append(l.freePipes, p)
		return
	}
	p.close()
}

// trimPipes closes the idle pipes once no burst has used one for
// pipeIdle.
func (l *loop) trimPipes() {
	if len(l.freePipes) == 0 || l.now-l.pipeUsed < int64(l.s.pipeIdleAfter) {
		return
	}
	for i, p := range l.freePipes {
		p.close()
		l.freePipes[i] = nil
	}
	l.freePipes = l.freePipes[:0]
}

func (l *loop) getDial() *dialState {
	if n := len(l.freeDials); n > 0 {
		d := l.freeDials[n-1]
		l.freeDials = l.freeDials[:n-1]
		return d
	}
	return new(dialState)
}

func (l *loop) putDial(d *dialState) {
	*d = dialState{}
	if len(l.freeDials) < maxFreeConns {
		l.freeDials = append(l.freeDials, d)
	}
}
