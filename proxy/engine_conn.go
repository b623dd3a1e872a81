package proxy

import (
	"context"
	"net/netip"
	"time"

	"github.com/tierlb/tierlb/backends"
)

// Connection states in the epoll engine. The zero value is closed, so a
// recycled struct reads as closed until it is handed out again.
const (
	stateClosed uint8 = iota
	stateHeader       // reading a trusted client's PROXY header
	stateResolving
	stateConnecting
	stateOpen
)

// econn is one proxied connection in the epoll engine: two descriptors and
// a few words of state, owned by one loop and touched only by it. Other
// goroutines reach it through the loop's request queue, naming it by
// pointer and generation so that a request for a connection that ended and
// whose struct was reused is ignored.
type econn struct {
	cfg      *settings
	b        *backends.Backend
	dial     *dialState  // while resolving or connecting
	stopDown func() bool // on_backend_down: close
	end      string      // how it ended; the first reason wins
	peer     netip.AddrPort
	local    netip.AddrPort // what the client's PROXY header says it reached; else unset
	start    int64          // loop clock, ns
	last     int64          // last byte moved either way
	halfAt   int64          // when the half-close grace ends; 0: none
	when     int64          // timer deadline
	cfd, bfd int32
	gen      uint32
	heapIdx  int32 // in the loop's timer heap; -1: not scheduled
	liveIdx  int32 // in the loop's list of open connections
	state    uint8
	rst      bool // close both sides with an RST
	up, down edir // client → backend, backend → client
}

// edir is one direction's state. Bytes wait in a pending buffer or a pipe
// only while the destination is full; both are lent by the loop and given
// back as soon as they are empty.
type edir struct {
	pend     *[bufSize]byte
	off, end int32
	pipe     *pipe
	inPipe   int32
	burst    int32
	n        int64 // bytes written to the destination
	flushed  int64 // bytes already added to the backend's counters
	readable bool  // the source may hold data (edge seen, not drained)
	rdhup    bool  // the source's FIN has arrived
	errSeen  bool  // EPOLLERR: read on until the error, never infer EOF
	eof      bool  // the source is done
	shut     bool  // the FIN was passed on
	bulk     bool  // inside a burst: splice
	noPipe   bool  // no pipe could be had; copy until the next drain
	queued   bool  // in the loop's list of work left over
}

func (d *edir) pending() bool { return d.inPipe > 0 || d.off < d.end }

// setEnd records how the connection ended unless a reason is recorded.
func (c *econn) setEnd(reason string) {
	if c.end == "" {
		c.end = reason
	}
}

// dialState is what a connection needs only until its backend answers.
type dialState struct {
	order [maxTries]*backends.Backend
	n     int
	next  int
	cur   *backends.Backend
	addr  netip.AddrPort
	t0    int64 // start of the current attempt
	last  error // the latest failure, for the access log
}

// newConn hands out a connection struct, recycled when one is free.
func (l *loop) newConn() *econn {
	var c *econn
	if n := len(l.freeConns); n > 0 {
		c = l.freeConns[n-1]
		l.freeConns = l.freeConns[:n-1]
	} else {
		c = new(econn)
	}
	l.gen++
	if l.gen == genReserved {
		l.gen = 1
	}
	c.gen = l.gen
	c.heapIdx, c.cfd, c.bfd = -1, -1, -1
	return c
}

// finish closes both sockets and accounts for the connection exactly as
// the goroutine path does: backend counters, duration metric, access log.
func (l *loop) finish(c *econn) {
	if c.state == stateClosed {
		return
	}
	l.unschedule(c)
	if c.stopDown != nil {
		c.stopDown()
	}
	if c.dial != nil {
		l.putDial(c.dial)
	}
	l.closeSide(int(c.cfd), c.rst)
	l.closeSide(int(c.bfd), c.rst)
	l.releaseDir(&c.up)
	l.releaseDir(&c.down)
	s := l.s
	dur := time.Duration(l.clock() - c.start)
	if c.b != nil {
		c.b.ConnClosed(c.up.n-c.up.flushed, c.down.n-c.down.flushed)
		s.metrics.connClosed(dur.Seconds())
	}
	if c.cfg.AccessLog {
		backend := ""
		if c.b != nil {
			backend = c.b.ID()
		}
		end := c.end
		if end == "" {
			end = "error: unknown"
		}
		s.logConnection(c.peer, backend, c.up.n, c.down.n, dur, end)
	}
	l.untrack(c)
	*c = econn{gen: c.gen}
	if len(l.freeConns) < maxFreeConns {
		l.freeConns = append(l.freeConns, c)
	}
	s.active.Add(-1)
	s.wg.Done()
}

// fail ends the connection on an error, resetting both sides.
func (l *loop) fail(c *econn, op string, backendSide bool, err error) {
	if c.state == stateClosed {
		return
	}
	c.setEnd("error: " + (&sideError{op: op, side: sideName(backendSide), err: err}).Error())
	c.rst = true
	l.finish(c)
}

// reject ends a connection that was admitted but cannot be proxied.
func (l *loop) reject(c *econn, reason, end string) {
	l.s.metrics.connRejected(reason)
	c.rst = true
	c.setEnd(end)
	l.finish(c)
}

// closeSide forgets and closes one socket of a connection.
func (l *loop) closeSide(fd int, rst bool) {
	if fd < 0 {
		return
	}
	l.fds[fd] = nil
	closeFD(fd, rst)
}

// releaseDir gives back what a direction still holds. A pipe that may hold
// bytes is closed, never pooled; counters are flushed by finish.
func (l *loop) releaseDir(d *edir) {
	if d.pipe != nil {
		if d.inPipe > 0 {
			d.pipe.close()
		} else {
			l.putPipe(d.pipe)
		}
		d.pipe, d.inPipe = nil, 0
	}
	if d.pend != nil {
		l.putBuf(d.pend)
		d.pend, d.off, d.end = nil, 0, 0
	}
}

// watchBackendDown arms on_backend_down: close. The callback runs on
// another goroutine, so it only posts a request naming the connection.
func (l *loop) watchBackendDown(c *econn) {
	gen := c.gen
	c.stopDown = context.AfterFunc(c.b.DownContext(), func() {
		l.post(request{kind: reqAbort, c: c, gen: gen, end: "error: backend went down", rst: true})
	})
}

// track registers an accepted connection with the loop.
func (l *loop) track(c *econn) {
	c.liveIdx = int32(len(l.live))
	l.live = append(l.live, c)
	l.load.Add(1)
	l.setFD(int(c.cfd), c)
}

func (l *loop) untrack(c *econn) {
	i := int(c.liveIdx)
	last := len(l.live) - 1
	l.live[i] = l.live[last]
	l.live[i].liveIdx = int32(i)
	l.live[last] = nil
	l.live = l.live[:last]
	l.load.Add(-1)
}

// setFD maps a descriptor to its connection for event dispatch.
func (l *loop) setFD(fd int, c *econn) {
	if fd >= len(l.fds) {
		n := max(2*len(l.fds), fd+1, 1024)
		fds := make([]*econn, n)
		copy(fds, l.fds)
		l.fds = fds
	}
	l.fds[fd] = c
}
