//go:build linux

package proxy

import (
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/tierlb/tierlb/proxy/internal/evloop"
	"github.com/tierlb/tierlb/proxy/internal/wake"
)

const (
	// connEvents: edge-triggered, so a registration is made once per
	// socket and never modified; EPOLLRDHUP so a FIN behind data is seen
	// without a read that returns 0.
	connEvents = unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET
)

// loop is the TCP data path's state in one event loop of the process
// (evloop.Loop): the connections it serves, whatever their service, and
// what it recycles for them. It belongs to the loop's goroutine; other
// goroutines reach it through its request queue (request.go) and read its
// load counter.
type loop struct {
	el *evloop.Loop

	buf  [bufSize]byte // every small message passes through here
	rsa  unix.RawSockaddrAny
	rlen uint32

	fds    []*conn // by descriptor
	live   []*conn // open connections, for drain and tests
	timers []*conn // min-heap on when
	again  []work  // directions that used their budget with data left
	spare  []work  // the other list runAgain swaps with again
	free   freeLists
	paused []*acceptor // listeners backing off after an accept error
	ticks  uint64      // wakeups so far (Tick), which tell a burst (acceptSome)

	// unflushed are the connections whose bytes the backend's counters
	// do not have yet, flushed at flushAt (counters.go).
	unflushed []*conn
	flushAt   int64

	// load is how many connections the loop holds or has been handed;
	// other loops read it to place new connections.
	load atomic.Int32

	// io batches the small messages of a wakeup (batch.go).
	io ioBatch

	// reqs is what other goroutines ask of the loop's connections. It is
	// typed, unlike the loop's own queue of functions, so that the
	// requests of the data path (a connection placed here by another
	// loop, a name resolved) allocate nothing.
	reqs wake.Queue[request]
}

// work names a direction to continue after other connections had a turn.
type work struct {
	c   *conn
	gen uint32
	up  bool
}

// tcpKey attaches the TCP state to an evloop.Loop.
var tcpKey = new(byte)

// tcpLoop returns the TCP state of el, made on first use. In el's
// goroutine only.
func tcpLoop(el *evloop.Loop) *loop {
	return el.Driver(tcpKey, newLoop).(*loop)
}

func newLoop(el *evloop.Loop) evloop.Driver {
	l := &loop{el: el}
	if el.Rings() {
		if err := l.io.open(); err != nil {
			el.Log().Info("no io_uring: small messages go one syscall at a time", "err", err)
		}
	}
	if err := l.reqs.Open(); err != nil {
		// Without an eventfd the queue is closed: posts fail and their
		// senders clean up, as for a stopped loop.
		l.reqs.Close()
		return l
	}
	if err := el.Add(l.reqs.FD(), unix.EPOLLIN, el.NextGen(), queueHandler{l}); err != nil {
		l.reqs.Close()
	}
	return l
}

// queueHandler runs the loop's requests when their eventfd is readable.
type queueHandler struct{ l *loop }

func (q queueHandler) Ready(*unix.EpollEvent) { q.l.requests() }

// Ready dispatches an event of a connection's socket.
func (l *loop) Ready(ev *unix.EpollEvent) {
	fd := int(ev.Fd)
	if fd >= len(l.fds) {
		return
	}
	c := l.fds[fd]
	if c == nil || c.gen != uint32(ev.Pad) {
		return // a socket closed earlier in this batch; its number may be reused
	}
	l.event(c, fd, ev.Events)
}

// Tick runs after each batch of events.
func (l *loop) Tick() {
	l.ticks++
	l.flushBatch()
	l.runAgain()
	l.expire()
	if len(l.unflushed) > 0 && l.el.Now >= l.flushAt {
		l.flushCounters()
	}
	l.flushEnds()
}

// Deadline is the loop clock of the next deadline.
func (l *loop) Deadline() int64 {
	if len(l.again) > 0 || l.io.n > 0 {
		return 0
	}
	next := l.nextDeadline()
	if len(l.unflushed) > 0 && (next < 0 || l.flushAt < next) {
		next = l.flushAt
	}
	return next
}

// Stop ends every connection as the loop leaves; the process is stopping
// and every service has drained.
func (l *loop) Stop() {
	l.abortAll(EndDrain)
	l.io.n = 0
	l.flushEnds()
	l.io.close()
	l.reqs.Close()
	// Connections placed here by another loop and not adopted yet.
	reqs := l.reqs.Take()
	for i := range reqs {
		l.handle(&reqs[i])
	}
	l.reqs.Done(reqs)
	l.free.closePipes()
}

// clock reads the loop clock now.
func (l *loop) clock() int64 { return l.el.Clock() }

// register adds a connection's socket to the loop's epoll set.
func (l *loop) register(fd int, gen uint32) error {
	return l.el.Add(fd, connEvents, gen, l)
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
