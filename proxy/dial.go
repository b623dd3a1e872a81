//go:build linux

package proxy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tierlb/tierlb/proxy/internal/evloop"

	"github.com/tierlb/tierlb/backends"
	"github.com/tierlb/tierlb/proxy/sni"
)

// dialState is what a connection needs only until its backend answers
// (on a Front, until its ClientHello is read).
type dialState struct {
	order [maxTries]*backends.Backend // the failover order
	n     int
	next  int
	cur   *backends.Backend
	addr  netip.AddrPort
	t0    int64 // start of the current attempt
	last  error // the latest failure, for the access log
	// hello frames the ClientHello on a Front, before any dial.
	hello sni.Reader
}

// startDial takes the failover order from the pool snapshot and dials the
// first backend.
func (l *loop) startDial(c *conn) {
	ds := l.getDial()
	c.dial = ds
	order := c.svc.pools.Pool().Order(c.peer.Addr(), ds.order[:0:c.cfg.tries()])
	ds.n = len(order)
	if ds.n == 0 {
		l.reject(c, RejectNoBackend, "error: no backend available")
		return
	}
	l.dialNext(c)
}

// dialNext starts a connect to the next backend of the order, or rejects
// the client when none is left. A failure that is known at once (socket
// or connect errors) moves on in the same call.
func (l *loop) dialNext(c *conn) {
	ds := c.dial
	for ds.next < ds.n {
		b := ds.order[ds.next]
		ds.next++
		ds.cur, ds.t0 = b, l.el.Now
		addr := b.Address()
		ap, err := netip.ParseAddrPort(addr)
		if err != nil {
			l.resolve(c, addr)
			return
		}
		if l.startConnect(c, ap) {
			return
		}
	}
	end := "error: no backend available"
	if ds.last != nil {
		end = "error: " + ds.last.Error()
	}
	l.reject(c, RejectNoBackend, end)
}

// startConnect opens a non-blocking socket to ap; the outcome arrives as an
// epoll event (EPOLLOUT: connected, EPOLLERR: failed) or as the connect
// deadline. It returns false when the attempt failed at once, and true
// too when a local resource error ended the connection (localerr.go).
func (l *loop) startConnect(c *conn, ap netip.AddrPort) bool {
	ds := c.dial
	ds.addr = ap
	family := unix.AF_INET6
	if ap.Addr().Unmap().Is4() {
		family = unix.AF_INET
	}
	fd, err := evloop.Socket(family, unix.SOCK_STREAM)
	if err != nil {
		if l.localDialError(c, "socket", err) {
			return true
		}
		l.dialFailed(c, os.NewSyscallError("socket", err))
		return false
	}
	if err := setBackendOptions(fd); err != nil {
		evloop.Close(fd)
		l.dialFailed(c, err)
		return false
	}
	if ap.Addr().Zone() != "" {
		err = connectZoned(fd, ap)
	} else {
		err = sysConnect(fd, ap, &l.rsa)
	}
	if err != nil && err != unix.EINPROGRESS {
		evloop.Close(fd)
		if l.localDialError(c, "connect", err) {
			return true
		}
		l.dialFailed(c, os.NewSyscallError("connect", err))
		return false
	}
	c.bfd = int32(fd)
	l.setFD(fd, c)
	c.state = stateConnecting
	l.schedule(c, ds.t0+int64(c.cfg.Timeouts.connect()))
	// Registered at the end of the wakeup (queueRegister); a failure then
	// fails the attempt as a failed connect would.
	l.queueRegister(c, fd, true)
	return true
}

// setBackendOptions sets TCP_NODELAY before connecting: a small message
// must leave at once, not wait for an ACK. The leg options follow once the
// connection has lasted legOptionsAfter (setBackendLegOptions).
func setBackendOptions(fd int) error {
	if err := evloop.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		return fmt.Errorf("set TCP_NODELAY: %w", err)
	}
	return nil
}

// setBackendLegOptions sets the leg options on the backend's socket of a
// connection that has lasted legOptionsAfter. Best effort: they tune how
// soon a dead backend is found, and the connection works without them.
func (l *loop) setBackendLegOptions(c *conn) {
	c.legSet = true
	for _, o := range legOptions() {
		if err := evloop.SetsockoptInt(int(c.bfd), o.level, o.name, o.value); err != nil {
			c.svc.log.Debug("backend socket option", "backend", c.b.ID(), "client", c.peer,
				"option", fmt.Sprintf("%d/%d", o.level, o.name), "err", err)
		}
	}
}

// connectZoned connects to a link-local IPv6 address with a zone, which
// needs the interface's index; rare enough to allocate.
func connectZoned(fd int, ap netip.AddrPort) error {
	ifi, err := net.InterfaceByName(ap.Addr().Zone())
	if err != nil {
		return err
	}
	return unix.Connect(fd, &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16(), ZoneId: uint32(ifi.Index)})
}

// connectEvent handles an event on a backend socket that is connecting.
func (l *loop) connectEvent(c *conn, ev uint32) {
	if ev&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
		err := socketError(int(c.bfd))
		if err == nil {
			err = unix.ECONNRESET
		}
		l.abandonAttempt(c)
		l.dialFailed(c, os.NewSyscallError("connect", err))
		l.dialNext(c)
		return
	}
	if ev&unix.EPOLLOUT == 0 {
		return
	}
	l.connected(c, ev)
}

// connectTimedOut fails the attempt in progress at its deadline.
func (l *loop) connectTimedOut(c *conn) {
	l.abandonAttempt(c)
	l.dialFailed(c, os.ErrDeadlineExceeded)
	l.dialNext(c)
}

// abandonAttempt closes the socket of a failed attempt.
func (l *loop) abandonAttempt(c *conn) {
	l.unschedule(c)
	if c.bfd >= 0 {
		l.closeSide(int(c.bfd), false)
		c.bfd = -1
	}
	c.state = stateResolving
}

// dialFailed counts a failed attempt on its backend and tells the
// observer. The error has the shape of Go's dialer's (a *net.OpError), so
// that backends.ClassifyDialError and the access log read it as usual.
func (l *loop) dialFailed(c *conn, err error) {
	s, ds := c.svc, c.dial
	b := ds.cur
	var addr net.Addr
	if ds.addr.IsValid() {
		addr = net.TCPAddrFromAddrPort(ds.addr)
	}
	derr := &net.OpError{Op: "dial", Net: "tcp", Addr: addr, Err: err}
	ds.last = fmt.Errorf("dial backend %s/%s %s: %w", s.name, b.ID(), b.Address(), derr)
	ds.addr = netip.AddrPort{}
	b.CountConnectError(backends.ClassifyDialError(derr))
	s.observer.DialFailed(b, derr)
	s.log.Debug("backend dial failed", "backend", b.ID(), "client", c.peer, "err", derr)
}

// connected starts proxying: counters, on_backend_down, the PROXY header,
// the idle deadline, then whatever either side already sent.
func (l *loop) connected(c *conn, ev uint32) {
	s, ds := c.svc, c.dial
	b := ds.cur
	s.metrics.dialed(time.Duration(l.el.Now - ds.t0).Seconds())
	s.observer.DialSucceeded(b)
	l.putDial(ds)
	c.dial = nil
	c.b = b
	b.ConnOpened()
	c.state = stateOpen
	l.unschedule(c)
	if c.cfg.CloseOnBackendDown {
		l.watchBackendDown(c)
	}
	if v := c.cfg.proxyVersion; v != 0 {
		if err := l.sendProxyHeader(c, v); err != nil {
			c.setEnd("error: " + err.Error())
			c.rst = true
			l.finish(c)
			return
		}
	}
	c.last = l.el.Now
	l.scheduleIdle(c)
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP) != 0 {
		c.down.readable = true
		c.down.rdhup = ev&unix.EPOLLRDHUP != 0
	}
	l.pump(c, &c.up)
	if c.state == stateOpen {
		l.pump(c, &c.down)
	}
}

// sendProxyHeader writes the PROXY header before any client byte. A fresh
// socket's send buffer is empty, so the header (at most 232 bytes) goes in
// one send; anything short of that is an error for this connection.
func (l *loop) sendProxyHeader(c *conn, version byte) error {
	local := c.local
	if !local.IsValid() {
		var err error
		if local, err = localAddrPort(int(c.cfd)); err != nil {
			return fmt.Errorf("PROXY header: local address: %w", err)
		}
	}
	hdr, err := formatProxyHeader(version, c.peer, local)
	if err != nil {
		return err
	}
	for {
		n, err := sysSend(int(c.bfd), hdr, 0)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return &sideError{op: "write", side: "backend", err: err}
		case n != len(hdr):
			return &sideError{op: "write", side: "backend", err: fmt.Errorf("PROXY header: sent %d of %d bytes", n, len(hdr))}
		}
		return nil
	}
}

// resolve looks a backend's host name up off the loop, on every dial (as
// Go's dialer would), so that a changed DNS answer is followed; the answer
// comes back as a request. The connect deadline covers the lookup and the
// connect together.
func (l *loop) resolve(c *conn, addr string) {
	c.state = stateResolving
	l.schedule(c, c.dial.t0+int64(c.cfg.Timeouts.connect()))
	host, portStr, err := net.SplitHostPort(addr)
	var port uint64
	if err == nil {
		port, err = strconv.ParseUint(portStr, 10, 16)
	}
	if err != nil {
		l.unschedule(c)
		l.dialFailed(c, err)
		l.dialNext(c)
		return
	}
	ctx, timeout, gen := c.svc.dialCtx, c.cfg.Timeouts.connect(), c.gen
	go func() {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		r := request{kind: reqResolved, c: c, gen: gen}
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		switch {
		case err != nil:
			r.err = err
		case len(ips) == 0:
			r.err = fmt.Errorf("lookup %s: no addresses", host)
		default:
			r.ap = netip.AddrPortFrom(preferIPv4(ips), uint16(port))
		}
		l.post(r)
	}()
}

// preferIPv4 picks the address to dial: the first IPv4 one, as Go's dialer
// tries IPv4 first on a dual-stack answer without a fallback race.
func preferIPv4(ips []netip.Addr) netip.Addr {
	for _, ip := range ips {
		if ip.Unmap().Is4() {
			return ip.Unmap()
		}
	}
	return ips[0]
}

// resolved continues a dial once the backend's name is known.
func (l *loop) resolved(c *conn, ap netip.AddrPort, err error) {
	if err != nil {
		l.unschedule(c)
		l.dialFailed(c, err)
		l.dialNext(c)
		return
	}
	if !l.startConnect(c, ap) {
		l.unschedule(c)
		l.dialNext(c)
	}
}
