//go:build linux

package udp

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/tierlb/tierlb/backends"
	"github.com/tierlb/tierlb/proxy/internal/evloop"
)

// Spare sockets. With udp.responses set, a session ends once its backend
// has sent the replies it owes, and a DNS-style client makes one session
// per query. A new socket for each cost the loop a socket, a connect, an
// epoll registration and a close, some 30% of its CPU at 40,000 queries a
// second. On a host with conntrack loaded (a Docker host) each new source
// port also made a conntrack entry, kept 120 s once replied: a socket per
// query cycles through the whole ephemeral port range, an entry per port
// and backend. The socket of a session that ended that way is kept
// instead, still connected to its backend and still in the epoll set,
// and the next session of the same service to the same backend takes it,
// with its source port and its conntrack entry.
//
// A spare is drained before it is taken: a datagram the backend sent
// after the replies it owed is dropped and counted (late_reply), never
// handed to the next client. One that arrives while the socket is spare
// wakes the loop and is dropped then. A spare that errs (the backend's
// ICMP port unreachable) is closed, and the session gets a new socket.
// A loop keeps at most maxSpares, each at most spareIdle: once a service
// stops getting queries, its spares are closed within a second.
const (
	maxSpares = 256
	spareIdle = int64(time.Second)
	// maxLate bounds the late datagrams one drain drops: a backend that
	// keeps sending to a spare loses it instead.
	maxLate = 16
)

// spareKey is whose sockets a spare list holds: a backend of a service.
type spareKey struct {
	s *Service
	b *backends.Backend
}

// spares are a loop's spare sockets. Each is a session struct marked
// spare, in lp.fds under its socket so that its events find it, in the
// list of its key, oldest first.
type spares struct {
	by      map[spareKey]sessionList
	n       int
	sweepAt int64 // loop clock of the next look for expired spares
}

// park keeps the socket of ses, which ended with every reply it was owed,
// as a spare, and reports whether it did. The session's counts leave its
// backend as a close would take them.
func (l *listener) park(ses *session) bool {
	lp := l.lp
	if l.draining || ses.refused || ses.fd < 0 || lp.spare.n >= maxSpares || lp.el.Stopping() {
		return false
	}
	sp := lp.newSession()
	sp.spare = true
	sp.ln, sp.fd, sp.gen, sp.b, sp.last = l, ses.fd, ses.gen, ses.b, lp.el.Now
	lp.fds[sp.fd] = sp
	release(ses)
	if lp.spare.by == nil {
		lp.spare.by = make(map[spareKey]sessionList)
	}
	k := spareKey{l.s, sp.b}
	q := lp.spare.by[k]
	q.pushBack(sp)
	lp.spare.by[k] = q
	if lp.spare.n == 0 {
		lp.spare.sweepAt = sp.last + spareIdle
	}
	lp.spare.n++
	return true
}

// takeSpare returns a drained spare socket of l's service to b, and its
// registration's generation; ok is false when there is none.
func (l *listener) takeSpare(b *backends.Backend) (fd int, gen uint32, ok bool) {
	lp := l.lp
	if lp.spare.n == 0 {
		return -1, 0, false
	}
	k := spareKey{l.s, b}
	for {
		q, found := lp.spare.by[k]
		if !found {
			return -1, 0, false
		}
		sp := q.head
		lp.unlist(k, q, sp)
		if lp.drainSpare(sp) {
			fd, gen = sp.fd, sp.gen
			lp.fds[fd] = nil
			lp.freeSession(sp)
			return fd, gen, true
		}
		lp.closeSpare(sp)
	}
}

// unlist takes sp out of q, the list of k, and returns q as it is then.
func (lp *loop) unlist(k spareKey, q sessionList, sp *session) sessionList {
	q.remove(sp)
	if q.head == nil {
		delete(lp.spare.by, k)
	} else {
		lp.spare.by[k] = q
	}
	lp.spare.n--
	return q
}

// drainSpare drops what the spare's socket holds and reports whether the
// socket can serve a session: false after an error (a refusal the backend
// reported) or more than maxLate datagrams.
func (lp *loop) drainSpare(sp *session) bool {
	for range maxLate + 1 {
		_, err := sysDiscard(sp.fd)
		switch err {
		case nil:
			sp.ln.s.metrics.drop(dropLateReply, 1)
			continue
		case unix.EAGAIN:
			return true
		case unix.EINTR:
			continue
		}
		return false
	}
	return false
}

// spareReadable handles an event of a spare's socket: a late datagram.
func (lp *loop) spareReadable(sp *session) {
	if lp.drainSpare(sp) {
		return
	}
	k := spareKey{sp.ln.s, sp.b}
	lp.unlist(k, lp.spare.by[k], sp)
	lp.closeSpare(sp)
}

// closeSpare closes the socket of a spare taken out of its list.
func (lp *loop) closeSpare(sp *session) {
	lp.rio.unregistered(sp.fd)
	lp.closeSocket(sp.fd)
	lp.fds[sp.fd] = nil
	lp.freeSession(sp)
}

// expireSpares closes the spares idle for spareIdle.
func (lp *loop) expireSpares() {
	now := lp.el.Now
	next := int64(-1)
	for k, q := range lp.spare.by {
		for sp := q.head; sp != nil && now-sp.last >= spareIdle; sp = q.head {
			q = lp.unlist(k, q, sp)
			lp.closeSpare(sp)
		}
		if h := q.head; h != nil && (next < 0 || h.last+spareIdle < next) {
			next = h.last + spareIdle
		}
	}
	lp.spare.sweepAt = next
}

// dropSpares closes the spares that ln made, or every one when ln is nil.
// A listener's spares can sit behind younger ones of another listener of
// its service (a port range), so every list is walked whole.
func (lp *loop) dropSpares(ln *listener) {
	for k, q := range lp.spare.by {
		for sp := q.head; sp != nil; {
			next := sp.next
			if ln == nil || sp.ln == ln {
				q = lp.unlist(k, q, sp)
				lp.closeSpare(sp)
			}
			sp = next
		}
	}
}

// spareDeadline is the loop clock of the next expiry of a spare, -1 for
// none.
func (lp *loop) spareDeadline() int64 {
	if lp.spare.n == 0 {
		return -1
	}
	return lp.spare.sweepAt
}

// sysDiscard drops the first datagram queued on fd without blocking and
// returns its length.
func sysDiscard(fd int) (int, error) {
	var b byte
	r, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&b)), 0,
		unix.MSG_DONTWAIT|unix.MSG_TRUNC, 0, 0)
	if e != 0 {
		return 0, evloop.Errno(e)
	}
	return int(r), nil
}
