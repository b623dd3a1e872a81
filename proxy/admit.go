//go:build linux

package proxy

import (
	"net/netip"

	"golang.org/x/sys/unix"
)

// admit applies the checks that need no bytes from the client (max_conns,
// allow), then waits for the client's PROXY header or starts the backend
// dial.
func (l *loop) admit(fd int, peer netip.AddrPort) {
	s := l.s
	cfg := s.cfg.Load()
	s.metrics.connAccepted()
	n := s.active.Add(1)
	header := contains(cfg.AcceptProxyProtocol, peer.Addr())
	switch {
	case cfg.MaxConns > 0 && n > int64(cfg.MaxConns):
		l.refuse(fd, peer, RejectMaxConns)
		return
	case !header && !allowed(cfg.Allow, peer.Addr()):
		// Clients behind a trusted proxy are checked once their PROXY
		// header named them.
		l.refuse(fd, peer, RejectNotAllowed)
		return
	}
	// Keepalive and TCP_USER_TIMEOUT are inherited from the listener;
	// TCP_NODELAY is not. Best effort, as Go's own accept does.
	_ = sysSetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	c := l.newConn()
	c.cfg, c.peer, c.cfd = cfg, peer, int32(fd)
	c.start, c.last = l.now, l.now
	c.state = stateResolving // until the dial starts
	// No Add can race Shutdown's Wait: the listener leaves every loop
	// (and this loop acknowledges it) before Shutdown waits.
	s.wg.Add(1)
	l.track(c)
	if err := l.ctl(unix.EPOLL_CTL_ADD, fd, connEvents, c.gen); err != nil {
		l.fail(c, "register", false, err)
		return
	}
	if header {
		l.startHeader(c)
		return
	}
	l.startDial(c)
}

// refuse closes a connection that was counted in active but never
// proxied, with an RST so that a flood of refusals leaves no TIME_WAIT.
func (l *loop) refuse(fd int, peer netip.AddrPort, reason string) {
	s := l.s
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
