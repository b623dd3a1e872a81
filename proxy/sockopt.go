//go:build linux

package proxy

import (
	"context"
	"fmt"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// TCP keepalive on both legs: a dead peer is found after idle + interval ×
// count = 2 minutes, well under the 900 s after which conntrack and IPVS
// forget an idle flow.
const (
	keepAliveIdle     = 60 * time.Second
	keepAliveInterval = 15 * time.Second
	keepAliveCount    = 4
	// userTimeout bounds how long sent data may stay unacknowledged; set to
	// the keepalive detection time so the two agree (RFC 5482 advice).
	userTimeout = keepAliveIdle + keepAliveCount*keepAliveInterval
)

// legOptionsAfter is how long a connection lasts before its backend socket
// gets the leg options (the client's inherits them from the listener when
// accepted). Most proxied connections are over sooner, which spares them
// five setsockopt calls; for the others nothing changes: the kernel counts
// keepalive's idle time from the last segment received whenever the
// options are set, and the user timeout from the first unacknowledged
// retransmission, both far longer than this.
const legOptionsAfter = time.Second

// sockopt is one integer socket option.
type sockopt struct{ level, name, value int }

// legOptions are set on every socket of both legs. Accepted sockets inherit
// them from the listener, which saves five syscalls per connection.
func legOptions() [5]sockopt {
	return [...]sockopt{
		{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, int(keepAliveIdle / time.Second)},
		{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, int(keepAliveInterval / time.Second)},
		{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, keepAliveCount},
		{unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(userTimeout / time.Millisecond)},
	}
}

// setLegOptions applies legOptions (and SO_REUSEPORT when asked) to a raw
// socket before it listens or connects.
func setLegOptions(c syscall.RawConn, reusePort bool) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		if reusePort {
			if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
				serr = fmt.Errorf("set SO_REUSEPORT: %w", err)
				return
			}
		}
		for _, o := range legOptions() {
			if err := unix.SetsockoptInt(int(fd), o.level, o.name, o.value); err != nil {
				serr = fmt.Errorf("set socket option %d/%d: %w", o.level, o.name, err)
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// listen binds addr with the leg options, SO_REUSEPORT when asked, and
// Multipath TCP explicitly off (Go may turn it on by default one day; a
// load balancer's sockets must be plain TCP for splice and TCP_INFO).
func listen(ctx context.Context, addr string, reusePort bool) (*net.TCPListener, error) {
	lc := net.ListenConfig{
		KeepAlive: -1,
		Control: func(_, _ string, c syscall.RawConn) error {
			return setLegOptions(c, reusePort)
		},
	}
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return ln.(*net.TCPListener), nil
}

// frontDeferAccept is a Front's TCP_DEFER_ACCEPT, in seconds: the kernel
// resends its SYN-ACK once, after 1 s, and hands over a client that
// answers it without data. Longer would only keep silent clients from the
// ClientHello timeout longer.
const frontDeferAccept = 1

// setAcceptOptions sets on a listening socket what the sockets it accepts
// inherit, so that accepting costs no setsockopt: TCP_NODELAY, which Linux
// copies to the accepted socket like the leg options. A Front also asks
// for TCP_DEFER_ACCEPT: its clients speak first, so the kernel hands a
// connection over with its ClientHello, and the loop wakes once for both
// instead of once for the accept and once for the hello. Set on every
// listener, inherited ones included, so that a socket taken over from
// another process gets them too, and a Front's socket taken over by a
// plain service no longer defers.
func setAcceptOptions(fd int, front bool) error {
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		return fmt.Errorf("set TCP_NODELAY: %w", err)
	}
	deferSecs := 0
	if front {
		deferSecs = frontDeferAccept
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, deferSecs); err != nil {
		return fmt.Errorf("set TCP_DEFER_ACCEPT: %w", err)
	}
	return nil
}
