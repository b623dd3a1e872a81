//go:build linux

package proxy

import (
	"fmt"
	"os"

	"github.com/tierlb/tierlb/proxy/sni"
)

// On a Front the ClientHello is read in the loop like a PROXY header: its
// bytes collect in the connection's client→backend pending buffer, after
// any header, and sni.Reader frames them as they come, so a hello split
// over any number of records and segments is read whole without parsing
// it twice. Whatever the client sent stays in the buffer and reaches the
// backend first, unchanged; the socket's remaining bytes follow through
// the usual data path.

// startHello waits for the ClientHello, for at most Timeouts.ClientHello.
// Bytes that came after a PROXY header may hold some of it already.
func (l *loop) startHello(c *conn) {
	c.state = stateHello
	c.dial = l.getDial()
	l.schedule(c, l.el.Now+int64(c.cfg.Timeouts.clientHello()))
	// Read at once: a Front's listener defers the accept until the client
	// has sent something (setAcceptOptions).
	c.up.readable = true
	l.readHello(c)
}

// readHello frames what the client sent so far and, once the ClientHello
// is whole, routes the connection by its server name.
func (l *loop) readHello(c *conn) {
	d := &c.up
	if d.pend == nil {
		d.pend = l.getBuf()
	}
	r := &c.dial.hello
	for {
		n, err := r.Next(d.pend[d.off:d.end])
		switch {
		case err != nil:
			l.notHello(c, err)
			return
		case n > 0:
			l.helloDone(c, d.pend[d.off:int(d.off)+n])
			return
		case int(d.end) == len(d.pend):
			// A PROXY header of tens of KiB took the room.
			l.notHello(c, sni.ErrTooLarge)
			return
		case !d.readable:
			return // drained: the next edge brings more
		}
		if more, err := readPending(c); err != nil {
			l.helloFailed(c, err)
			return
		} else if !more {
			return
		}
	}
}

// helloDone parses the framed ClientHello and hands the connection to
// the service its server name routes to.
func (l *loop) helloDone(c *conn, records []byte) {
	name, err := sni.ServerName(records)
	if err != nil {
		l.notHello(c, err)
		return
	}
	tbl := c.svc.routes.Load()
	i, ok := -1, false
	if tbl != nil {
		i, ok = tbl.m.Match(name)
	}
	if !ok {
		end := "error: no_sni_route: no service for server name " + quote(name)
		if len(name) == 0 {
			end = "error: no_sni_route: no server name, and no service for \"*\""
		}
		l.reject(c, RejectNoSNIRoute, end)
		return
	}
	l.route(c, tbl.svcs[i])
}

// route makes the connection t's, then applies t's accept checks, which
// needed the ClientHello, and dials one of t's backends. The connection
// stays in this loop and its socket in this epoll set.
func (l *loop) route(c *conn, t *Service) {
	l.unschedule(c)
	l.putDial(c.dial)
	c.dial = nil
	f := c.svc
	// Before the Front lets go: its Shutdown waits for this connection,
	// so the loops cannot stop in between.
	if !t.enter(f.set) {
		l.reject(c, RejectDraining, "error: service "+t.name+" is shutting down")
		return
	}
	f.active.Add(-1)
	f.wg.Done()
	c.svc, c.cfg = t, t.cfg.Load()
	t.metrics.connAccepted()
	n := t.active.Add(1)
	switch {
	case c.cfg.MaxConns > 0 && n > int64(c.cfg.MaxConns):
		l.reject(c, RejectMaxConns, "error: max_conns reached")
		return
	case !allowed(c.cfg.Allow, c.peer.Addr()):
		l.reject(c, RejectNotAllowed, "error: client not allowed")
		return
	}
	l.proceed(c, true)
}

// notHello ends a connection whose first bytes are no ClientHello that
// can be routed: not TLS, malformed or too large.
func (l *loop) notHello(c *conn, err error) {
	l.reject(c, RejectNotTLS, "error: not_tls: "+err.Error())
}

// helloTimedOut ends a connection whose ClientHello did not come whole in
// time: no server name to route by.
func (l *loop) helloTimedOut(c *conn) {
	l.reject(c, RejectNoSNIRoute, "error: no_sni_route: read ClientHello: "+os.ErrDeadlineExceeded.Error())
}

// helloFailed ends a connection that closed or failed before its
// ClientHello was whole: the client's doing, so no rejection is counted.
func (l *loop) helloFailed(c *conn, err error) {
	c.rst = true
	c.setEnd("error: read ClientHello: " + err.Error())
	l.finish(c)
}

// quote quotes a server name for the access log; a name is the client's
// bytes, so a long one is cut.
func quote(name []byte) string {
	const most = 255
	if len(name) > most {
		return fmt.Sprintf("%q...", name[:most])
	}
	return fmt.Sprintf("%q", name)
}
