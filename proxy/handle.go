package proxy

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/tierlb/tierlb/backends"
)

// handle runs one admitted connection to its end: PROXY header, access
// check, backend dial with failover, then the two copy loops.
func (s *Service) handle(c *conn) {
	defer s.finish(c)
	local := addrPort(c.client.LocalAddr())
	var rest []byte
	if contains(c.cfg.AcceptProxyProtocol, c.peer.Addr()) {
		h, err := readProxyHeader(c.client, c.cfg.Timeouts.proxyHeader())
		if err != nil {
			c.rst.Store(true)
			c.setEnd("error: " + err.Error())
			return
		}
		if h.src.IsValid() {
			c.peer, local = h.src, h.dst
		}
		rest = h.rest
		if !allowed(c.cfg.Allow, c.peer.Addr()) {
			s.reject(c, RejectNotAllowed, "error: client not allowed")
			return
		}
	}
	if c.isAborted() {
		return
	}

	var buf [maxTries]*backends.Backend
	order := s.pools.Pool().Order(c.peer.Addr(), buf[:0:c.cfg.tries()])
	if len(order) == 0 {
		s.reject(c, RejectNoBackend, "error: no backend available")
		return
	}
	bc, b, err := s.dial(c, order)
	if err != nil {
		if c.isAborted() {
			return
		}
		s.reject(c, RejectNoBackend, "error: "+err.Error())
		return
	}
	c.b = b
	b.ConnOpened()
	c.backend.Store(bc)
	if c.isAborted() {
		return
	}
	if c.cfg.CloseOnBackendDown {
		stop := context.AfterFunc(b.DownContext(), func() {
			c.abort("error: backend went down", true)
		})
		defer stop()
	}
	if err := s.sendPreamble(c, bc, local, rest); err != nil {
		c.abort("error: "+err.Error(), true)
		return
	}
	c.startTimer()
	s.copyBoth(c, bc)
}

// sendPreamble writes, in one write, the PROXY header for the backend and
// whatever the client sent after its own header, before splicing starts.
func (s *Service) sendPreamble(c *conn, bc *net.TCPConn, local netip.AddrPort, rest []byte) error {
	var out []byte
	if v := c.cfg.proxyVersion; v != 0 {
		hdr, err := formatProxyHeader(v, c.peer, local)
		if err != nil {
			return err
		}
		out = hdr
	}
	if len(out) == 0 && len(rest) == 0 {
		return nil
	}
	out = append(out, rest...)
	if _, err := bc.Write(out); err != nil {
		return &sideError{op: "write", side: "backend", err: err}
	}
	c.up.n = int64(len(rest))
	return nil
}

// copyBoth runs the two directions, one in a goroutine of its own and one
// in the connection's goroutine, and returns when both ended.
func (s *Service) copyBoth(c *conn, bc *net.TCPConn) {
	mode := c.cfg.mode
	c.up = pump{c: c, cp: s.cp, src: c.client, dst: bc, n: c.up.n}
	c.down = pump{c: c, cp: s.cp, src: bc, dst: c.client, toClient: true}
	if mode != copyStdlib {
		if err := c.up.init(mode); err != nil {
			c.abort("error: "+err.Error(), true)
			return
		}
		if err := c.down.init(mode); err != nil {
			c.abort("error: "+err.Error(), true)
			return
		}
	}
	done := make(chan struct{})
	go proxyToBackend(c, mode, done)
	proxyToClient(c, mode)
	<-done
}

// proxyToBackend and proxyToClient are named so stack dumps read well.
func proxyToBackend(c *conn, mode copyMode, done chan<- struct{}) {
	defer close(done)
	c.directionDone(&c.up, runPump(&c.up, mode))
}

func proxyToClient(c *conn, mode copyMode) {
	c.directionDone(&c.down, runPump(&c.down, mode))
}

func runPump(p *pump, mode copyMode) error {
	if mode == copyStdlib {
		return p.runStdlib()
	}
	return p.run()
}

// reject ends a connection that was admitted but cannot be proxied.
func (s *Service) reject(c *conn, reason, end string) {
	s.metrics.connRejected(reason)
	c.rst.Store(true)
	c.setEnd(end)
}

// finish closes both sockets once every loop on them has returned, and
// accounts for the connection.
func (s *Service) finish(c *conn) {
	c.stopTimer()
	bc := c.backend.Load()
	if c.rst.Load() {
		resetOnClose(c.client)
		if bc != nil {
			resetOnClose(bc)
		}
	}
	_ = c.client.Close()
	if bc != nil {
		_ = bc.Close()
	}
	dur := time.Since(c.start)
	if c.b != nil {
		c.b.ConnClosed(c.up.n-c.up.flushed, c.down.n-c.down.flushed)
		s.metrics.connClosed(dur.Seconds())
	}
	if c.cfg.AccessLog {
		backend := ""
		if c.b != nil {
			backend = c.b.ID()
		}
		s.logConnection(c.peer, backend, c.up.n, c.down.n, dur, c.endReason())
	}
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.active.Add(-1)
	s.wg.Done()
}

// logConnection writes a finished connection's access log line; both
// engines log through it, so their lines are the same.
func (s *Service) logConnection(peer netip.AddrPort, backend string, toBackend, toClient int64, dur time.Duration, end string) {
	s.access.LogAttrs(context.Background(), slog.LevelInfo, "connection",
		slog.String("client", peer.String()),
		slog.String("backend", backend),
		slog.Int64("bytes_to_backend", toBackend),
		slog.Int64("bytes_to_client", toClient),
		slog.Duration("duration", dur),
		slog.String("end", end))
}
