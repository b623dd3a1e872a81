//go:build linux

package udp

import (
	"golang.org/x/sys/unix"

	"github.com/tierlb/tierlb/proxy/internal/evloop"
	"github.com/tierlb/tierlb/proxy/internal/uring"
)

// Datagrams of many sessions in one syscall. Each session has a backend
// socket of its own, and sendmmsg and recvmmsg batch only on one socket:
// a wakeup that finds k clients' queries would send them with k
// sendmmsg, and read the k answers with k recvmmsg. With io_uring the
// loop queues both instead and, when the wakeup's events are dispatched
// (Tick), hands them to the kernel in one io_uring_enter: a send per
// datagram (a session's datagrams chained, so that they keep their order
// and stop at the first error, as in one sendmmsg), then a receive per
// readable session. The answers land in the reply batch and leave with
// its one sendmmsg, as before. A new session's socket is added to the
// epoll set in the same enter, and the sockets of the sessions that ended
// in the wakeup are closed with one more: with a session per query (DNS)
// those were two more syscalls per query.
//
// A receive through the ring takes one datagram; a session whose socket
// is readable again at the next wakeup has more queued than that, and is
// read with recvmmsg, which takes them all at once. A listener batch of a
// single session, and a single readable session, go the plain way too:
// one syscall either way, and sendmmsg or recvmmsg costs less than the
// enter. Without io_uring (engine.io_uring: false, an old kernel, a
// seccomp profile that forbids it) every session socket has its own
// calls; a ring that fails is dropped and the loop goes on without.

// ringIO is a loop's ring and what waits for it.
type ringIO struct {
	ring *uring.Ring // nil: a syscall per session socket

	// to is the session of each queued datagram of the client batch
	// (lp.in), nil for one that is not sent; nTo are queued.
	to  [batchSize]*session
	nTo int
	// from are the sessions whose backend socket is readable.
	from  [batchSize]*session
	nFrom int
	slot  [batchSize]int // the reply batch slot read into for from[i]; -1: none
	// adds are the epoll registrations of new sessions' sockets.
	adds [maxAdds]struct {
		fd int
		ev unix.EpollEvent
	}
	nAdd int
	epfd int
	// closes are the backend sockets of the sessions that ended.
	closes [maxCloses]int
	nClose int

	res  [ringOps]int32
	done [ringOps]bool
	cqes [ringOps]uring.Completion

	// tick counts the loop's wakeups, so that a session readable in two
	// in a row is seen to have more than one datagram waiting.
	tick uint32
}

const (
	// maxAdds and maxCloses are how many sockets wait to be registered
	// and closed at most; past that they are at once.
	maxAdds   = 2 * batchSize
	maxCloses = 2 * batchSize
	// ringOps are the operations of one wakeup at most: a batch of
	// sends, one of receives, the registrations, the closes. User data
	// numbers them in that order.
	addData   = 2 * batchSize
	closeData = addData + maxAdds
	ringOps   = closeData + maxCloses
)

// openRing sets the loop's ring up, if the loop may have one.
func (lp *loop) openRing() {
	lp.rio.tick = 2 // a new session's readAt (0) is no wakeup's predecessor
	if !lp.el.Rings() {
		return
	}
	r, err := uring.New(128) // ringOps, to a power of two
	if err != nil {
		lp.el.Log().Info("no io_uring: UDP datagrams go one syscall per session socket", "err", err)
		return
	}
	lp.rio.ring = r
}

// closeRing drops what waits and closes the ring.
func (lp *loop) closeRing() {
	rio := &lp.rio
	clear(rio.to[:])
	clear(rio.from[:])
	rio.nTo, rio.nFrom, rio.nAdd = 0, 0, 0
	for _, fd := range rio.closes[:rio.nClose] {
		_ = evloop.Close(fd)
	}
	rio.nClose = 0
	if rio.ring != nil {
		rio.ring.Close()
		rio.ring = nil
	}
}

// queued reports whether anything waits for the ring.
func (rio *ringIO) queued() bool { return rio.nTo > 0 || rio.nFrom > 0 || rio.nAdd > 0 }

// readable reads from a session's backend socket now, or queues it for
// the ring.
func (lp *loop) readable(ses *session) {
	rio := &lp.rio
	again := ses.readAt+1 == rio.tick
	ses.readAt = rio.tick
	if rio.ring == nil || again || rio.nFrom == batchSize {
		if rio.sending(ses) {
			// Its datagrams queued for the ring arrived before these
			// replies were read: they count first (udp.responses), or
			// the session could end without them.
			lp.submit()
		}
		ses.ln.fromBackend(ses)
		return
	}
	rio.from[rio.nFrom] = ses
	rio.nFrom++
}

// sending reports whether ses has datagrams queued for the ring.
func (rio *ringIO) sending(ses *session) bool {
	for _, s := range rio.to[:rio.nTo] {
		if s == ses {
			return true
		}
	}
	return false
}

// forget takes an ending session out of what waits for the ring and
// returns how many of its datagrams were still to be sent.
func (rio *ringIO) forget(ses *session) int {
	n := 0
	for i := range rio.nTo {
		if rio.to[i] == ses {
			rio.to[i] = nil
			n++
		}
	}
	for i := range rio.nFrom {
		if rio.from[i] == ses {
			rio.from[i] = nil
		}
	}
	return n
}

// submit registers the new sockets, sends the queued datagrams and reads
// the readable sessions, in one io_uring_enter, and files the results.
// After the ring failed, what is left is done the plain way.
func (lp *loop) submit() {
	rio := &lp.rio
	if rio.nTo == 0 && rio.nFrom+rio.nAdd <= 1 {
		if rio.nAdd == 1 {
			rio.nAdd = 0
			rio.done[addData] = false // registered the plain way
			lp.registered(1)
		}
		if ses := rio.from[0]; rio.nFrom == 1 && ses != nil {
			ses.ln.fromBackend(ses)
		}
		rio.from[0], rio.nFrom = nil, 0
		return
	}
	out := lp.out
	clear(rio.done[:closeData])
	for i := range rio.nFrom {
		rio.slot[i] = -1
	}
	ops, first, nAdd := 0, 0, rio.nAdd
	rio.nAdd = 0
	if rio.ring != nil {
		ops, first = lp.prepare(nAdd)
	}
	if ops > 0 {
		lp.enter(ops)
	}
	lp.registered(nAdd)

	// Sends first: a reply read below may end its session, and the
	// session must have counted what it sent.
	var filed uint32
	for i := range rio.nTo {
		if ses := rio.to[i]; ses != nil && filed&(1<<i) == 0 {
			filed |= ses.ln.sentChain(ses, i)
		}
	}
	clear(rio.to[:rio.nTo])
	rio.nTo = 0

	p := first
	for i := range rio.nFrom {
		ses, k := rio.from[i], rio.slot[i]
		if ses == nil || k < 0 {
			continue
		}
		u := batchSize + i
		if !rio.done[u] {
			continue // lost with the ring: still queued, or gone
		}
		if res := rio.res[u]; res < 0 {
			ses.ln.recvFailed(ses, evloop.Errno(unix.Errno(-res)))
			continue
		}
		if p != k {
			// After a slot that read nothing (rare): the reply moves
			// down, so that the batch stays in order, and slots past
			// out.n stay free for the next receive.
			copy(out.buf(p), out.buf(k)[:rio.res[u]])
		}
		out.hdrs[p].Len = uint32(rio.res[u])
		bytes := out.received(p)
		out.address(p, &ses.peer, &ses.ctrl, ses.ctrlLen)
		p++
		out.n = p
		ses.ln.replied(ses, 1, int64(bytes))
	}
	for i := range rio.nFrom {
		if ses := rio.from[i]; ses != nil && rio.slot[i] < 0 {
			ses.ln.fromBackend(ses)
		}
	}
	clear(rio.from[:rio.nFrom])
	rio.nFrom = 0
}

// prepare puts the queued work in the ring: the first nAdd
// registrations, the sends, and the receives into the reply batch from
// slot first on. It returns how many operations it prepared.
func (lp *loop) prepare(nAdd int) (ops, first int) {
	rio := &lp.rio
	r, in, out := rio.ring, lp.in, lp.out
	// The ring has room for all of each kind.
	for i := range nAdd {
		a := &rio.adds[i]
		_ = r.EpollCtl(rio.epfd, unix.EPOLL_CTL_ADD, a.fd, &a.ev, uint64(addData+i))
		ops++
	}
	var chained uint32 // by message: in a chain already
	for i := range rio.nTo {
		ses := rio.to[i]
		if ses == nil || chained&(1<<i) != 0 {
			continue
		}
		for j := i; j < rio.nTo; j++ {
			if rio.to[j] == ses {
				if j != i {
					r.Link()
				}
				_ = r.Send(ses.fd, in.payload(j), 0, uint64(j))
				chained |= 1 << j
				ops++
			}
		}
	}

	// One listener's replies leave in one sendmmsg, so the ring reads
	// for the first readable session's listener; the others are read
	// the plain way after.
	var ln *listener
	for _, ses := range rio.from[:rio.nFrom] {
		if ses != nil {
			ln = ses.ln
			break
		}
	}
	if ln == nil {
		return ops, 0
	}
	if out.n == batchSize || (out.n > 0 && lp.outLn != ln) {
		lp.flush()
	}
	lp.outLn = ln
	first = out.n
	out.armRecv(first, false, false)
	k := first
	for i, ses := range rio.from[:rio.nFrom] {
		if ses != nil && ses.ln == ln && k < batchSize {
			_ = r.Recv(ses.fd, out.buf(k), 0, uint64(batchSize+i))
			rio.slot[i] = k
			k++
			ops++
		}
	}
	return ops, first
}

// enter submits ops prepared entries and files each completion by its
// user data. A ring that fails is dropped: what completed is filed, and
// the loop goes on with plain syscalls.
func (lp *loop) enter(ops int) {
	rio := &lp.rio
	err := rio.ring.Submit()
	got := 0
	for {
		k := rio.ring.Reap(rio.cqes[:])
		if k == 0 {
			break
		}
		for _, c := range rio.cqes[:k] {
			if u := int(c.UserData); u < len(rio.done) && !rio.done[u] {
				rio.res[u], rio.done[u] = c.Res, true
				got++
			}
		}
	}
	if err == nil && got == ops {
		return
	}
	lp.el.Log().Warn("io_uring batch failed: UDP datagrams go one syscall per session socket in this loop",
		"err", err, "submitted", ops, "completed", got)
	rio.ring.Close()
	rio.ring = nil
}

// sentChain files the results of the sends of ses's datagrams queued
// from message i on, and returns the set of messages it filed. A refusal
// moves the session and sends the rest of the chain, the datagram
// refused included, the plain way (forward), as the error was an earlier
// datagram's. So does a send the ring lost: it may have left, and a
// duplicate costs a client less than a loss.
func (l *listener) sentChain(ses *session, i int) uint32 {
	rio := &l.lp.rio
	var filed uint32
	var err error
	lost := false
	for j := i; j < rio.nTo; j++ {
		if rio.to[j] != ses {
			continue
		}
		filed |= 1 << j
		switch {
		case err != nil:
			// After a failure: cancelled, or never prepared.
		case !rio.done[j]:
			lost = true
		case rio.res[j] < 0:
			err = evloop.Errno(unix.Errno(-rio.res[j]))
		default:
			l.sent(ses, l.lp.in.hdrs[j:j+1])
			continue
		}
		if err == nil && !lost {
			continue
		}
		switch {
		case lost || err == unix.EINTR:
			l.forward(ses, j, j+1)
		case movable(err):
			l.refusedBy(ses, err)
			l.move(ses)
			err = unix.EINTR // the rest goes the plain way
			l.forward(ses, j, j+1)
		default:
			l.s.metrics.drop(dropSendError, 1)
			if rio.res[j] != -int32(unix.ECANCELED) {
				l.s.log.Debug("send to backend", "backend", ses.b.ID(), "client", ses.client, "err", err)
			}
		}
	}
	return filed
}
