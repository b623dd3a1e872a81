package proxy

import (
	"errors"
	"math"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/tierlb/tierlb/backends"
)

// How a connection ended, for the access log. Errors read "error: TEXT".
const (
	EndClientClose  = "client_close"
	EndBackendClose = "backend_close"
	EndIdleTimeout  = "idle_timeout"
	EndDrain        = "drain"
)

// errAborted is what a copy loop returns when the connection was cut from
// outside (timeout, drain, backend down); the reason is recorded already.
var errAborted = errors.New("connection aborted")

// sideError is a copy loop's failure, naming the socket that failed.
type sideError struct {
	op   string // read, write or copy
	side string // client or backend
	err  error
}

func (e *sideError) Error() string { return e.op + " " + e.side + ": " + e.err.Error() }
func (e *sideError) Unwrap() error { return e.err }

// conn is one client connection from accept to close.
type conn struct {
	s      *Service
	cfg    *settings // the service's settings when the connection was accepted
	client *net.TCPConn
	// backend is set once dialed; atomic because abort may run meanwhile.
	backend atomic.Pointer[net.TCPConn]
	b       *backends.Backend
	peer    netip.AddrPort // the client's real address (from a PROXY header when accepted)
	start   time.Time

	aborted atomic.Bool
	rst     atomic.Bool            // close both sides with an RST
	end     atomic.Pointer[string] // the first reason wins
	halfAt  atomic.Int64           // since start, when the half-close grace ends; 0: none
	timer   *time.Timer            // idle and half-close deadlines
	up      pump                   // client → backend
	down    pump                   // backend → client
}

// setEnd records how the connection ended unless a reason is recorded.
func (c *conn) setEnd(reason string) {
	c.end.CompareAndSwap(nil, &reason)
}

// endReason returns the recorded reason.
func (c *conn) endReason() string {
	if r := c.end.Load(); r != nil {
		return *r
	}
	return "error: unknown"
}

func (c *conn) isAborted() bool { return c.aborted.Load() }

// abort cuts the connection from outside its copy loops: it records the
// reason and wakes every wait on both sockets with a past deadline. The
// sockets are closed by the connection's own goroutine once its loops
// returned, so no loop ever writes to a descriptor that was closed under it.
func (c *conn) abort(reason string, rst bool) {
	if reason != "" {
		c.setEnd(reason)
	}
	if rst {
		c.rst.Store(true)
	}
	if c.aborted.Swap(true) {
		return
	}
	past := time.Unix(1, 0)
	_ = c.client.SetDeadline(past)
	if b := c.backend.Load(); b != nil {
		_ = b.SetDeadline(past)
	}
}

// startTimer arms the idle deadline; the same timer enforces half-close.
func (c *conn) startTimer() {
	c.timer = time.AfterFunc(math.MaxInt64, c.onTimer)
	c.timer.Reset(c.cfg.Timeouts.idle())
}

// halfClosed starts the grace the other direction has after one side's FIN.
func (c *conn) halfClosed() {
	d := c.cfg.Timeouts.halfClose()
	c.halfAt.Store(int64(time.Since(c.start) + d))
	c.timer.Reset(min(d, c.cfg.Timeouts.idle()))
}

// onTimer checks the deadlines. Idleness comes from the kernel's TCP_INFO
// stamps of both sockets, so nothing is recorded per transfer.
func (c *conn) onTimer() {
	if c.isAborted() {
		return
	}
	wait := c.cfg.Timeouts.idle()
	if h := c.halfAt.Load(); h != 0 {
		left := time.Duration(h) - time.Since(c.start)
		if left <= 0 {
			c.abort("", false) // the first closer's reason stands
			return
		}
		wait = min(wait, left)
	}
	idle := c.cfg.Timeouts.idle()
	quiet, err := lastData(c.client)
	if b := c.backend.Load(); err == nil && b != nil {
		var q time.Duration
		if q, err = lastData(b); err == nil {
			quiet = min(quiet, q)
		}
	}
	if err != nil {
		// The socket is gone: the copy loops are ending on their own.
		return
	}
	if quiet >= idle {
		c.abort(EndIdleTimeout, false)
		return
	}
	c.timer.Reset(min(wait, idle-quiet))
}

func (c *conn) stopTimer() {
	if c.timer != nil {
		c.timer.Stop()
	}
}

// directionDone handles the end of one direction. A clean EOF is passed on
// as a FIN and starts the half-close grace; an error resets both sides.
func (c *conn) directionDone(p *pump, err error) {
	switch {
	case err == nil:
		if p.toClient {
			c.setEnd(EndBackendClose)
		} else {
			c.setEnd(EndClientClose)
		}
		if cerr := p.dst.CloseWrite(); cerr != nil && !c.isAborted() {
			c.abort("error: "+(&sideError{op: "close", side: p.dstSide(), err: cerr}).Error(), true)
			return
		}
		c.halfClosed()
	case errors.Is(err, errAborted) || c.isAborted():
		// Cut from outside; the reason is recorded.
	default:
		c.abort("error: "+err.Error(), true)
	}
}
