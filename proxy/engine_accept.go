package proxy

import (
	"net"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

// acceptBatch bounds the connections one wakeup accepts, so a flood of new
// connections does not starve the loop's open ones. The listener is
// level-triggered: what is left wakes the next epoll_wait.
const acceptBatch = 64

// acceptSome accepts what the listener holds.
func (l *loop) acceptSome() {
	for range acceptBatch {
		fd, err := sysAccept(l.lfd, &l.rsa, &l.rlen)
		switch err {
		case nil:
			l.backoff = 0
			l.place(fd, sockaddrToAddrPort(&l.rsa))
			continue
		case unix.EAGAIN:
			return
		case unix.EINTR, unix.ECONNABORTED:
			continue
		}
		// EMFILE, ENFILE, ENOBUFS, ENOMEM: the pending connection stays
		// queued and the level-triggered listener would wake us at once.
		// Take it out of this loop's epoll set for a while instead. No
		// reserve descriptor is kept to reset the waiting client: once
		// descriptors are free again it is served, which beats refusing
		// it during a short squeeze.
		l.pauseAccept(err)
		return
	}
}

// pauseAccept deregisters the listener for a backoff that doubles from
// minBackoff to maxBackoff, as the goroutine path's accept loop does.
func (l *loop) pauseAccept(err error) {
	l.backoff = min(max(2*l.backoff, minBackoff), maxBackoff)
	l.s.log.Warn("accept failed; retrying", "err", os.NewSyscallError("accept4", err), "backoff", l.backoff)
	if !l.acceptPaused {
		if cerr := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, l.lfd, nil); cerr != nil {
			l.s.log.Error("deregister listener", "err", cerr)
		}
	}
	l.acceptPaused = true
	l.resumeAt = l.now + int64(l.backoff)
}

// resumeAccept registers the listener again after a backoff.
func (l *loop) resumeAccept() {
	l.acceptPaused = false
	if l.lfd < 0 {
		return
	}
	if err := l.ctl(unix.EPOLL_CTL_ADD, l.lfd, unix.EPOLLIN|unix.EPOLLEXCLUSIVE, genReserved); err != nil {
		l.pauseAccept(err)
	}
}

// stopAccept takes the listener out of this loop for good; the engine
// closes it once every loop has.
func (l *loop) stopAccept() {
	if l.lfd < 0 {
		return
	}
	if !l.acceptPaused {
		_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, l.lfd, nil)
	}
	l.acceptPaused = false
	l.lfd = -1
}

// place serves a new connection on this loop, or hands it to the loop with
// the fewest connections when this one holds over 1/8 more. The kernel
// wakes whichever loop is waiting (EPOLLEXCLUSIVE), so a burst of
// connections can all land on one: measured, all 8 of wrk's bulk
// connections sat on one loop in 1 run of 3, moving 1.9 GB/s instead of
// 2.3. The slack keeps steady churn, where loads differ by a few, from
// paying an eventfd round trip per connection.
func (l *loop) place(fd int, peer netip.AddrPort) {
	t := l.e.leastLoaded(l)
	if t == l {
		l.admit(fd, peer)
		return
	}
	// Counted now, so that the rest of a burst spreads too, and held in
	// the service's WaitGroup until adopted: Shutdown may be waiting.
	t.load.Add(1)
	l.s.wg.Add(1)
	if !t.post(request{kind: reqAdopt, fd: fd, ap: peer}) {
		t.load.Add(-1)
		closeFD(fd, true)
		l.s.wg.Done()
	}
}

// adopt serves a connection another loop accepted and placed here.
func (l *loop) adopt(fd int, peer netip.AddrPort) {
	l.load.Add(-1) // admit counts it again if it is served
	if l.stopping {
		closeFD(fd, true)
	} else {
		l.admit(fd, peer)
	}
	l.s.wg.Done()
}

// admit applies the checks that need no bytes from the client, then
// waits for the client's PROXY header or starts the backend dial. The
// standard library's io.Copy mode is the goroutine path's.
func (l *loop) admit(fd int, peer netip.AddrPort) {
	s := l.s
	cfg := s.cfg.Load()
	if cfg.mode == copyStdlib {
		l.handOff(fd)
		return
	}
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
	// TCP_NODELAY is not (measured), and HAProxy sets it per socket too.
	// Best effort, as Go's own accept does.
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

// handOff gives an accepted socket to the goroutine path.
func (l *loop) handOff(fd int) {
	f := os.NewFile(uintptr(fd), "")
	nc, err := net.FileConn(f) // a duplicate; ours is closed below
	f.Close()
	if err != nil {
		l.s.log.Warn("hand connection to the goroutine path", "err", err)
		return
	}
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		nc.Close()
		return
	}
	// FileConn turned on Go's default keepalive; ours was inherited from
	// the listener and is put back.
	if rc, err := tc.SyscallConn(); err == nil {
		if err := setLegOptions(rc, false); err != nil {
			l.s.log.Warn("socket options of handed-off connection", "err", err)
		}
	}
	l.s.admit(tc)
}
