//go:build linux

package udp

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/tierlb/tierlb/backends"
)

// How a session ended, the access log's end field.
const (
	EndIdleTimeout = "idle_timeout" // session_timeout passed without datagrams
	EndResponses   = "responses"    // the expected replies arrived
	EndDrain       = "drain"        // cut at the drain deadline
)

// session is one client address's traffic, bound to one backend through
// a socket connected to it. Sessions belong to the loop that received
// their first datagram; with several loops the kernel's SO_REUSEPORT hash
// keeps sending a client's datagrams to the same loop.
type session struct {
	client  netip.AddrPort // as received: the key in the loop's table
	peer    sockaddr       // the client's address, for replies
	ctrl    ctrlBuf        // pktinfo of replies: the address the client sent to
	ctrlLen int            // 0: no pktinfo (the listener has one address)

	ln  *listener // the socket the client sends to
	fd  int
	gen uint32
	b   *backends.Backend
	st  *backendStats

	start, last int64  // loop clock: first datagram, latest datagram either way
	owed        int64  // replies still expected (Config.Responses)
	readAt      uint32 // the loop's wakeup (ringIO.tick) that last found the socket readable
	refused     bool   // the backend refused a datagram: move on the next one
	answered    bool   // the observer heard of a reply since the last refusal
	spare       bool   // no session: a spare socket (spare.go), fd, gen, b, ln and last set

	toBackend, toClient int64 // bytes
	dgUp, dgDown        int64 // datagrams

	prev, next *session // the loop's expiry list, oldest activity first
}

// start opens a session for the client of message i of the client batch,
// or returns nil after counting why the datagram is dropped.
func (l *listener) start(client netip.AddrPort, i int) *session {
	cfg := l.cfg
	ip := client.Addr().Unmap()
	switch {
	case l.draining:
		l.s.metrics.drop(dropDraining, 1)
		return nil
	case !cfg.allowed(ip):
		l.s.metrics.drop(dropNotAllowed, 1)
		return nil
	}
	if n := l.s.active.Add(1); cfg.MaxSessions > 0 && n > int64(cfg.MaxSessions) {
		l.s.active.Add(-1)
		l.s.metrics.drop(dropMaxSessions, 1)
		return nil
	}
	sock, b := l.connectFirst(ip, nil)
	if b == nil {
		l.s.active.Add(-1)
		l.s.metrics.drop(dropNoBackend, 1)
		return nil
	}
	ses := l.lp.newSession()
	ses.ln = l
	ses.client = client
	ses.peer = l.lp.in.names[i]
	if l.pktinfo {
		if local, ok := parseLocal(l.lp.in.control(i)); ok {
			ses.ctrlLen = putLocal(&ses.ctrl, local, l.v6)
		}
	}
	ses.start, ses.last = l.lp.el.Now, l.lp.el.Now
	l.sessions[client] = ses
	if len(l.sessions) == 1 {
		l.lp.setBusy(l)
	}
	l.expiry.pushBack(ses)
	l.bind(ses, sock, b)
	return ses
}

// backendSocket is a session's socket to its backend: a new one, or a
// spare, which is in the epoll set already under gen.
type backendSocket struct {
	fd    int
	gen   uint32
	spare bool
}

// connectFirst opens a socket to the first backend of the pool's order for
// ip that takes one, skipping except, or takes a spare one to it. It
// returns a nil backend when none does.
func (l *listener) connectFirst(ip netip.Addr, except *backends.Backend) (backendSocket, *backends.Backend) {
	order := l.s.pools.Pool().Order(ip, l.lp.order[:0:maxTries])
	// The order buffer must not keep removed backends alive.
	defer clear(order)
	for _, b := range order {
		if b == except {
			continue
		}
		if fd, gen, ok := l.takeSpare(b); ok {
			return backendSocket{fd: fd, gen: gen, spare: true}, b
		}
		fd, err := l.lp.connect(b)
		if err == nil {
			return backendSocket{fd: fd}, b
		}
		b.CountConnectError(backends.ClassifyDialError(err))
		l.s.observer.DialFailed(b, err)
		l.s.log.Debug("backend socket failed", "backend", b.ID(), "client", ip, "err", err)
	}
	return backendSocket{fd: -1}, nil
}

// bind makes sock, connected to b, the session's way to its backend.
func (l *listener) bind(ses *session, sock backendSocket, b *backends.Backend) {
	lp := l.lp
	fd := sock.fd
	ses.fd, ses.gen, ses.b = fd, sock.gen, b
	if !sock.spare {
		ses.gen = lp.el.NextGen()
	}
	ses.st = l.s.stats.opened(b)
	ses.refused, ses.answered = false, false
	b.ConnOpened()
	for fd >= len(lp.fds) {
		lp.fds = append(lp.fds, nil)
	}
	lp.fds[fd] = ses
	if sock.spare {
		return
	}
	if err := lp.register(fd, ses.gen); err != nil {
		// Without its registration the session never hears its backend;
		// it still forwards, and times out.
		l.s.log.Warn("register backend socket", "backend", b.ID(), "err", err)
	}
}

// unbind closes the session's backend socket and takes its counts off the
// backend.
func (l *listener) unbind(ses *session) {
	l.lp.rio.unregistered(ses.fd)
	l.lp.closeSocket(ses.fd) // also leaves the epoll set: the socket has no other descriptor
	l.lp.fds[ses.fd] = nil
	release(ses)
}

// release takes the session's counts off its backend and forgets its
// socket, closed or kept as a spare.
func release(ses *session) {
	ses.b.ConnClosed(0, 0)
	ses.st.active.Add(-1)
	ses.fd, ses.b, ses.st = -1, nil, nil
}

// move rebinds a session whose backend refused a datagram or went down to
// another backend, and reports whether it did. With no other backend the
// session stays where it is, and the next datagram tries again.
func (l *listener) move(ses *session) bool {
	old := ses.b
	sock, b := l.connectFirst(ses.client.Addr().Unmap(), old)
	if b == nil {
		return false
	}
	l.unbind(ses)
	l.bind(ses, sock, b)
	l.s.log.Debug("session moved", "client", ses.client, "from", old.ID(), "to", b.ID())
	return true
}

// stale reports whether a session must leave its backend before its next
// datagram: the backend refused one, or it is down. A draining backend
// keeps its sessions; the state lock is taken only for a backend that is
// not up.
func stale(ses *session) bool {
	if ses.refused {
		return true
	}
	if ses.b.Up() {
		return false
	}
	st, _ := ses.b.State()
	return st == backends.StateDown
}

// end finishes a session: socket closed (or kept as a spare when the
// session ended with its replies), counts returned, access logged.
func (l *listener) end(ses *session, how string) {
	b := ses.b
	if n := l.lp.rio.forget(ses); n > 0 {
		// Datagrams queued for the ring when the session was cut.
		l.s.metrics.drop(dropDraining, n)
	}
	if how != EndResponses || !l.park(ses) {
		l.unbind(ses)
	}
	delete(l.sessions, ses.client)
	if len(l.sessions) == 0 {
		l.lp.setIdle(l)
		l.checkDrained()
	}
	l.expiry.remove(ses)
	l.s.active.Add(-1)
	if l.cfg.AccessLog {
		attrs := [...]slog.Attr{
			slog.String("client", ses.client.String()),
			slog.String("backend", b.ID()),
			slog.Int64("bytes_to_backend", ses.toBackend),
			slog.Int64("bytes_to_client", ses.toClient),
			slog.Int64("datagrams_to_backend", ses.dgUp),
			slog.Int64("datagrams_to_client", ses.dgDown),
			slog.Duration("duration", time.Duration(l.lp.el.Now-ses.start)),
			slog.String("end", how),
			slog.Int("port", l.port),
		}
		n := len(attrs) - 1
		if l.s.portRange {
			// Which port of the range the client sent to.
			n++
		}
		l.s.access.LogAttrs(context.Background(), slog.LevelInfo, "session", attrs[:n]...)
	}
	l.lp.freeSession(ses)
}

// refusedBy records that the backend refused a datagram (ICMP port
// unreachable, seen as ECONNREFUSED on the connected socket).
func (l *listener) refusedBy(ses *session, err error) {
	ses.refused = true
	ses.b.CountConnectError(backends.ClassifyDialError(err))
	l.s.observer.DialFailed(ses.b, err)
	l.s.log.Debug("backend refused a datagram", "backend", ses.b.ID(), "client", ses.client, "err", err)
}

// maxFreeSessions bounds the recycled session structs a loop keeps.
const maxFreeSessions = 1024

func (lp *loop) newSession() *session {
	if n := len(lp.free); n > 0 {
		ses := lp.free[n-1]
		lp.free = lp.free[:n-1]
		return ses
	}
	return &session{fd: -1}
}

func (lp *loop) freeSession(ses *session) {
	*ses = session{fd: -1}
	if len(lp.free) < maxFreeSessions {
		lp.free = append(lp.free, ses)
	}
}
