//go:build linux

package proxy

import (
	"golang.org/x/sys/unix"
)

// defer_dial, for protocols where the client speaks first: an accepted
// client costs one descriptor and a conn struct until its first bytes
// arrive, and none at all after timeouts.first_data if they never do. A
// dial at accept costs a backend descriptor (and the backend's own, and a
// slot of its max connections) for as long as a silent client cares to
// hold it, up to timeouts.idle. It is Linux's TCP_DEFER_ACCEPT done in the
// proxy, where the timeout can close the client instead of handing it over
// silent.

// startDialOrWait starts the backend dial, or with defer_dial waits for
// the client's first bytes first. hasData says bytes are known to be
// waiting (what followed a PROXY header).
func (l *loop) startDialOrWait(c *conn, hasData bool) {
	if !c.cfg.DeferDial || hasData || clientHasData(int(c.cfd)) {
		c.state = stateResolving
		l.startDial(c)
		return
	}
	c.state = stateWaiting
	l.schedule(c, l.el.Now+int64(c.cfg.Timeouts.firstData()))
}

// clientHasData peeks at the client socket: after a PROXY header the
// socket may already hold bytes that will not raise another edge.
func clientHasData(fd int) bool {
	var b [1]byte
	n, _, err := unix.Recvfrom(fd, b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	return err == nil && n > 0
}

// clientSpoke starts the deferred dial: the client's bytes (or its FIN)
// are here and stay in the socket until the backend is connected.
func (l *loop) clientSpoke(c *conn) {
	l.unschedule(c)
	c.state = stateResolving
	l.startDial(c)
}

// firstDataTimedOut closes a client that sent nothing in time.
func (l *loop) firstDataTimedOut(c *conn) {
	l.reject(c, RejectNoClientData, "error: no data from the client within "+c.cfg.Timeouts.firstData().String())
}
