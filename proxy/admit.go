//go:build linux

package proxy

import (
	"net/netip"
)

// admit applies the checks that need no bytes from the client (max_conns,
// allow), then waits for the client's PROXY header or starts the backend
// dial. port is the listening port the client connected to.
func (l *loop) admit(s *Service, fd int, peer netip.AddrPort, port uint16) {
	cfg := s.cfg.Load()
	s.metrics.connAccepted()
	n := s.active.Add(1)
	header := contains(cfg.AcceptProxyProtocol, peer.Addr())
	switch {
	case cfg.MaxConns > 0 && n > int64(cfg.MaxConns):
		l.refuse(s, fd, peer, RejectMaxConns)
		return
	case !header && !allowed(cfg.Allow, peer.Addr()):
		// Clients behind a trusted proxy are checked once their PROXY
		// header named them.
		l.refuse(s, fd, peer, RejectNotAllowed)
		return
	}
	// TCP_NODELAY, keepalive and TCP_USER_TIMEOUT are inherited from the
	// listener (setAcceptOptions, legOptions).
	c := l.newConn()
	c.svc, c.cfg, c.peer, c.cfd, c.port = s, cfg, peer, int32(fd), port
	c.start, c.last = l.el.Now, l.el.Now
	c.state = stateResolving // until the dial starts
	// No Add can race Shutdown's Wait: the listener leaves every loop
	// (and this loop acknowledges it) before Shutdown waits.
	s.wg.Add(1)
	l.track(c)
	if header {
		l.startHeader(c)
	} else {
		l.proceed(c, false)
	}
	// Registered after the first read: what that read took raises no
	// event of its own, so the next wait does not report it again.
	if c.state != stateClosed {
		l.queueRegister(c, fd, false)
	}
}

// proceed goes on with a connection that passed the accept checks and
// sent its PROXY header, if one was due: a Front reads its ClientHello;
// a service applies max_conns_per_client, then dials a backend or, with
// defer_dial, waits for the client's first bytes. hasData says bytes are
// known to be waiting already (what followed a PROXY header, or the
// ClientHello a Front routed by).
func (l *loop) proceed(c *conn, hasData bool) {
	if c.svc.routes != nil {
		l.startHello(c)
		return
	}
	if l.admitClient(c) {
		l.startDialOrWait(c, hasData)
	}
}

// refuse closes a connection that was counted in active but never
// proxied, with an RST so that a flood of refusals leaves no TIME_WAIT.
func (l *loop) refuse(s *Service, fd int, peer netip.AddrPort, reason string) {
	s.active.Add(-1)
	s.metrics.connRejected(reason)
	closeFD(fd, true)
	s.log.Debug("connection refused", "client", peer, "reason", reason)
}

// allowed reports whether the client may connect: an empty list allows all.
func allowed(allow []netip.Prefix, a netip.Addr) bool {
	return len(allow) == 0 || contains(allow, a)
}

// contains reports whether a is in one of nets.
func contains(nets []netip.Prefix, a netip.Addr) bool {
	for _, p := range nets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
