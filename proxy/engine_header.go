package proxy

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// A trusted client's PROXY header is read in the loop (see headerLength):
// its bytes collect in the connection's client→backend pending buffer
// until the header is whole. What the client sent after the header stays
// in the buffer and is the first thing the backend gets, after tierlb's
// own header if it sends one.

// startHeader waits for a trusted client's PROXY header, for at most
// the proxy-header timeout (Timeouts.ProxyHeader).
func (l *loop) startHeader(c *econn) {
	c.state = stateHeader
	l.schedule(c, l.now+int64(c.cfg.Timeouts.proxyHeader()))
}

// readHeader reads what the client sent so far and, once the header is
// whole, checks it and starts the backend dial.
func (l *loop) readHeader(c *econn) {
	d := &c.up
	if d.pend == nil {
		d.pend = l.getBuf()
	}
	for {
		n, err := sysRead(int(c.cfd), d.pend[d.end:])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			d.readable = false
			return
		case err != nil:
			l.headerFailed(c, os.NewSyscallError("read", err))
			return
		case n == 0:
			l.headerFailed(c, io.ErrUnexpectedEOF)
			return
		}
		d.end += int32(n)
		hlen := headerLength(d.pend[:d.end])
		switch {
		case hlen > maxHeaderSize:
			l.headerDone(c, proxyHeader{}, errHeaderTooLong(hlen))
		case hlen < 0:
			l.headerDone(c, proxyHeader{}, badHeader(d.pend[:d.end]))
		case hlen > 0 && hlen <= int(d.end):
			h, err := parseHeader(d.pend[:hlen], nil)
			d.off = int32(hlen)
			l.headerDone(c, h, err)
		default:
			continue // more to come; the buffer holds any header
		}
		return
	}
}

// headerDone starts the dial for a client whose header was read, or ends
// the connection on err.
func (l *loop) headerDone(c *econn, h proxyHeader, err error) {
	if err != nil {
		c.rst = true
		c.setEnd("error: " + err.Error())
		l.finish(c)
		return
	}
	if h.src.IsValid() {
		c.peer, c.local = h.src, h.dst
	}
	// What followed the header waits for the backend. The socket may hold
	// more: reading stopped at the header's end, so it reads on once open.
	d := &c.up
	if d.off == d.end {
		l.putBuf(d.pend)
		d.pend, d.off, d.end = nil, 0, 0
	}
	d.readable = true
	l.unschedule(c)
	if !allowed(c.cfg.Allow, c.peer.Addr()) {
		l.reject(c, RejectNotAllowed, "error: client not allowed")
		return
	}
	c.state = stateResolving
	l.startDial(c)
}

// headerFailed ends a connection whose header did not come whole: the
// client closed, reset or was too slow.
func (l *loop) headerFailed(c *econn, err error) {
	c.rst = true
	c.setEnd("error: read PROXY header: " + err.Error())
	l.finish(c)
}
