//go:build linux

package proxy

import (
	"context"
	"net/netip"

	"github.com/tierlb/tierlb/backends"
)

// Connection states. The zero value is closed, so a recycled struct reads
// as closed until it is handed out again.
const (
	stateClosed     uint8 = iota
	stateHeader           // reading a trusted client's PROXY header
	stateHello            // a Front reading the ClientHello
	stateResolving        // choosing, resolving or between backends to dial
	stateConnecting       // a connect to a backend is in progress
	stateOpen             // proxying
	stateWaiting          // defer_dial: waiting for the client's first bytes
)

// conn is one proxied connection: two descriptors and a few words of
// state, owned by one loop and touched only by it. Other goroutines reach
// it through the loop's request queue.
type conn struct {
	svc      *Service  // whose connection it is: a Front's until routed
	cfg      *settings // the service's settings when it was accepted
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
	port     uint16 // the listening port the client connected to
	heapIdx  int32  // in the loop's timer heap; -1: not scheduled
	liveIdx  int32  // in the loop's list of open connections
	state    uint8
	rst      bool      // close both sides with an RST
	counted  bool      // holds a place in the service's per-client counts
	legSet   bool      // the backend socket has the leg options
	up, down direction // client → backend, backend → client

	// unflushed: bytes moved since the loop last added them to the
	// backend's counters; the connection is in the loop's list to flush.
	unflushed bool
}

// direction is one direction's state. Bytes wait in a pending buffer or a
// pipe only while the destination is full; both are lent by the loop and
// given back as soon as they are empty.
type direction struct {
	pend     *[bufSize]byte
	off, end int32
	pipe     *pipe
	inPipe   int32
	burst    int32
	n        int64 // bytes written to the destination
	counted  int64 // bytes already added to the backend's counters
	readable bool  // the source may hold data (edge seen, not drained)
	rdhup    bool  // the source's FIN has arrived
	errSeen  bool  // EPOLLERR: read on until the error, never infer EOF
	eof      bool  // the source is done
	shut     bool  // the FIN was passed on
	bulk     bool  // inside a burst: splice
	noPipe   bool  // no pipe could be had; copy until the next drain
	queued   bool  // in the loop's list of work left over
}

// pending reports whether bytes wait for the destination.
func (d *direction) pending() bool { return d.inPipe > 0 || d.off < d.end }

// setEnd records how the connection ended unless a reason is recorded.
func (c *conn) setEnd(reason string) {
	if c.end == "" {
		c.end = reason
	}
}

// newConn hands out a connection struct, recycled when one is free.
func (l *loop) newConn() *conn {
	var c *conn
	f := &l.free
	if n := len(f.conns); n > 0 {
		c = f.conns[n-1]
		f.conns = f.conns[:n-1]
	} else {
		c = new(conn)
	}
	c.gen = l.el.NextGen()
	c.heapIdx, c.cfd, c.bfd = -1, -1, -1
	return c
}

// recycle keeps a finished connection's struct for the next one. Its
// generation stays, so requests still naming the old one are ignored.
func (l *loop) recycle(c *conn) {
	*c = conn{gen: c.gen}
	if len(l.free.conns) < maxFreeConns {
		l.free.conns = append(l.free.conns, c)
	}
}

// watchBackendDown arms on_backend_down: close. The callback runs on
// another goroutine, so it only posts a request naming the connection.
func (l *loop) watchBackendDown(c *conn) {
	gen := c.gen
	c.stopDown = context.AfterFunc(c.b.DownContext(), func() {
		l.post(request{kind: reqAbort, c: c, gen: gen, end: "error: backend went down", rst: true})
	})
}

// dir returns a direction by what it reads: up reads the client and
// writes the backend, the other reads the backend.
func (c *conn) dir(up bool) *direction {
	if up {
		return &c.up
	}
	return &c.down
}

// ends returns the descriptors the direction up reads from and writes to.
func (c *conn) ends(up bool) (src, dst int) {
	if up {
		return int(c.cfd), int(c.bfd)
	}
	return int(c.bfd), int(c.cfd)
}
