//go:build linux

package proxy

import (
	"context"
	"log/slog"
	"time"
)

// How a connection ended, for the access log. Errors read "error: TEXT".
const (
	EndClientClose  = "client_close"
	EndBackendClose = "backend_close"
	EndIdleTimeout  = "idle_timeout"
	EndDrain        = "drain"
)

// sideError is a failed socket call, naming the side whose socket failed.
type sideError struct {
	op   string // read, write or close
	side string // client or backend
	err  error
}

func (e *sideError) Error() string { return e.op + " " + e.side + ": " + e.err.Error() }
func (e *sideError) Unwrap() error { return e.err }

func sideName(backend bool) string {
	if backend {
		return "backend"
	}
	return "client"
}

// finish closes both sockets and accounts for the connection: backend
// counters, duration metric, access log. Every way a connection ends
// comes through here, exactly once.
func (l *loop) finish(c *conn) {
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
	s := c.svc
	dur := time.Duration(l.clock() - c.start)
	if c.b != nil {
		c.b.ConnClosed(c.up.n-c.up.counted, c.down.n-c.down.counted)
		s.metrics.connClosed(dur.Seconds())
	}
	if c.cfg.AccessLog {
		s.logConnection(c, dur)
	}
	l.releaseClient(c)
	l.untrack(c)
	l.recycle(c)
	s.active.Add(-1)
	s.wg.Done()
}

// fail ends the connection on a socket error, resetting both sides.
func (l *loop) fail(c *conn, op string, backendSide bool, err error) {
	if c.state == stateClosed {
		return
	}
	c.setEnd("error: " + (&sideError{op: op, side: sideName(backendSide), err: err}).Error())
	c.rst = true
	l.finish(c)
}

// reject ends a connection that was admitted but cannot be proxied.
func (l *loop) reject(c *conn, reason, end string) {
	c.svc.metrics.connRejected(reason)
	c.rst = true
	c.setEnd(end)
	l.finish(c)
}

// closeSide forgets one socket of a connection and closes it at the end
// of the wakeup (queueClose).
func (l *loop) closeSide(fd int, rst bool) {
	if fd < 0 {
		return
	}
	l.fds[fd] = nil
	if rst {
		lingerZero(fd)
	}
	l.queueClose(fd)
}

// releaseDir gives back what a direction still holds. A pipe that may hold
// bytes is closed, never pooled; counters are added by finish.
func (l *loop) releaseDir(d *direction) {
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

// logConnection writes a finished connection's access log line.
func (s *Service) logConnection(c *conn, dur time.Duration) {
	backend := ""
	if c.b != nil {
		backend = c.b.ID()
	}
	end := c.end
	if end == "" {
		end = "error: unknown"
	}
	attrs := [...]slog.Attr{
		slog.String("client", c.peer.String()),
		slog.String("backend", backend),
		slog.Int64("bytes_to_backend", c.up.n),
		slog.Int64("bytes_to_client", c.down.n),
		slog.Duration("duration", dur),
		slog.String("end", end),
		slog.Int("port", int(c.port)),
	}
	n := len(attrs) - 1
	if c.cfg.portRange {
		// Which port of the range the client used.
		n++
	}
	s.access.LogAttrs(context.Background(), slog.LevelInfo, "connection", attrs[:n]...)
}
