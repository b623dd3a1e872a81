//go:build linux

package udp

import (
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/tierlb/tierlb/backends"

	"github.com/tierlb/tierlb/proxy/internal/evloop"
)

// loop is the UDP data path's state in one event loop of the process
// (evloop.Loop), shared by every UDP listening socket registered there:
// the two batches, the table of sessions' backend sockets and the
// recycled session structs. Registrations are level-triggered: each
// wakeup moves at most one batch per socket, so a busy client does not
// starve the others, and what is left wakes the next epoll_wait.
type loop struct {
	el    *evloop.Loop
	in    *batch    // datagrams from clients
	out   *batch    // replies to clients, flushed once per wakeup
	outLn *listener // whose socket the replies in out leave through
	order [maxTries]*backends.Backend
	dst   sockaddr // connect's argument

	// rio batches the session sockets' sends, receives, registrations
	// and closes of a wakeup (ring.go).
	rio ringIO

	fds []*session // by backend socket descriptor: a session's or a spare's
	// spare are the sockets of ended sessions kept for the next ones
	// (spare.go).
	spare spares
	free  []*session  // recycled
	lns   []*listener // registered in this loop
	// busy are the listeners that hold sessions: only they have
	// replies to send and sessions to expire, so a wakeup looks at them
	// and not at every port of a range.
	busy []*listener
}

// listener is one listening socket of a service, registered in one loop,
// and the sessions of the clients whose datagrams arrive on it. It
// belongs to its loop's goroutine.
type listener struct {
	s       *Service
	lp      *loop // while registered
	fd      int
	v6      bool // the socket is AF_INET6 (dual-stack when wildcard)
	pktinfo bool // wildcard: replies carry their source address
	addr    *net.UDPAddr
	port    int       // addr's port: which port of a range clients sent to
	cfg     *settings // read once per wakeup

	sessions map[netip.AddrPort]*session
	expiry   sessionList

	draining bool // no new sessions
	empty    bool // drained and told the service so
	busyIdx  int  // in the loop's busy listeners; -1: not there
}

// udpKey attaches the UDP state to an evloop.Loop.
var udpKey = new(byte)

// udpLoop returns the UDP state of el, made on first use. In el's
// goroutine only.
func udpLoop(el *evloop.Loop) *loop {
	return el.Driver(udpKey, newLoop).(*loop)
}

func newLoop(el *evloop.Loop) evloop.Driver {
	lp := &loop{el: el, in: newBatch(), out: newBatch()}
	lp.openRing()
	return lp
}

// add registers ln's socket in the loop.
func (lp *loop) add(ln *listener) error {
	if err := lp.el.Add(ln.fd, unix.EPOLLIN, lp.el.NextGen(), ln); err != nil {
		return err
	}
	ln.lp = lp
	ln.cfg = ln.s.cfg.Load()
	ln.busyIdx = -1
	lp.lns = append(lp.lns, ln)
	return nil
}

// setBusy notes that ln holds sessions.
func (lp *loop) setBusy(ln *listener) {
	if ln.busyIdx < 0 {
		ln.busyIdx = len(lp.busy)
		lp.busy = append(lp.busy, ln)
	}
}

// setIdle notes that ln holds no session any more.
func (lp *loop) setIdle(ln *listener) {
	i := ln.busyIdx
	if i < 0 {
		return
	}
	last := len(lp.busy) - 1
	lp.busy[i] = lp.busy[last]
	lp.busy[i].busyIdx = i
	lp.busy[last] = nil
	lp.busy = lp.busy[:last]
	ln.busyIdx = -1
}

// drain makes ln take no new sessions.
func (ln *listener) drain() {
	ln.draining = true
	if ln.lp != nil {
		ln.lp.dropSpares(ln)
	}
	ln.checkDrained()
}

// checkDrained tells the service once a draining listener holds no
// session.
func (ln *listener) checkDrained() {
	if ln.draining && !ln.empty && len(ln.sessions) == 0 {
		ln.empty = true
		ln.s.listenerEmpty()
	}
}

// remove ends ln's sessions and takes its socket out of the loop, without
// closing it; it returns how many sessions ended.
func (lp *loop) remove(ln *listener, how string) int {
	n := ln.abortAll(how)
	lp.dropSpares(ln)
	if lp.outLn == ln {
		lp.flush()
		lp.outLn = nil
	}
	_ = lp.el.Del(ln.fd)
	for i, x := range lp.lns {
		if x == ln {
			lp.lns = append(lp.lns[:i], lp.lns[i+1:]...)
			break
		}
	}
	return n
}

// Ready dispatches an event of a session's backend socket.
func (lp *loop) Ready(ev *unix.EpollEvent) {
	fd := int(ev.Fd)
	if fd >= len(lp.fds) {
		return
	}
	ses := lp.fds[fd]
	if ses == nil || ses.gen != uint32(ev.Pad) {
		return // a session ended earlier in this batch; its descriptor may be reused
	}
	if ses.spare {
		lp.spareReadable(ses)
		return
	}
	lp.readable(ses)
}

// Tick hands the ring what waits for it, sends the collected replies,
// ends the sessions that expired and closes the sockets of those that
// ended.
func (lp *loop) Tick() {
	for lp.rio.queued() {
		// A session moved by a refusal queues its new socket's
		// registration: it must be made before the loop sleeps.
		lp.submit()
	}
	lp.flush()
	lp.rio.tick++
	// Down from the end: a listener whose last session expires leaves
	// busy, and the last one takes its place.
	for i := len(lp.busy) - 1; i >= 0; i-- {
		if i < len(lp.busy) {
			ln := lp.busy[i]
			ln.cfg = ln.s.cfg.Load()
			ln.expire()
		}
	}
	if lp.spare.n > 0 && lp.el.Now >= lp.spare.sweepAt {
		lp.expireSpares()
	}
	if lp.rio.nClose > 0 {
		lp.closeQueued()
	}
}

// Deadline is the loop clock of the next session expiry.
func (lp *loop) Deadline() int64 {
	if lp.rio.queued() {
		return 0
	}
	next := lp.spareDeadline()
	for _, ln := range lp.busy {
		if t := ln.deadline(); t >= 0 && (next < 0 || t < next) {
			next = t
		}
	}
	return next
}

// Stop ends every session as the loop leaves; the sockets are their
// services' to close.
func (lp *loop) Stop() {
	for _, ln := range lp.lns {
		ln.abortAll(EndDrain)
	}
	lp.dropSpares(nil)
	lp.lns = nil
	lp.closeRing()
}

// Ready receives from the listening socket.
func (l *listener) Ready(*unix.EpollEvent) { l.fromClients() }

// fromClients receives one batch from the listening socket and forwards
// each datagram on its session's backend socket; consecutive datagrams of
// one session go in one sendmmsg, or the batch's datagrams of more than
// one session wait for the ring (ring.go).
func (l *listener) fromClients() {
	l.cfg = l.s.cfg.Load()
	lp := l.lp
	if lp.rio.nTo > 0 {
		lp.submit() // another listener's datagrams, in the batch about to be reused
	}
	in := lp.in
	n, err := sysRecvmmsg(l.fd, in.armRecv(0, true, l.pktinfo))
	if err != nil {
		if err != unix.EAGAIN && err != unix.EINTR {
			l.s.log.Warn("receive from clients", "err", err)
		}
		return
	}
	if lp.rio.ring != nil {
		l.queueToBackends(n)
		return
	}
	var run *session
	from := 0
	for i := range n {
		in.received(i)
		ses := l.sessionFor(i)
		if ses != run || ses == nil {
			if run != nil {
				l.forward(run, from, i)
			}
			run, from = ses, i
		}
	}
	if run != nil {
		l.forward(run, from, n)
	}
}

// queueToBackends queues client messages [0, n) for the ring, or
// forwards them at once when they are all one session's.
func (l *listener) queueToBackends(n int) {
	rio := &l.lp.rio
	var run, one *session
	runs := 0
	for i := range n {
		l.lp.in.received(i)
		ses := l.sessionFor(i)
		rio.to[i] = ses
		if ses != nil && ses != run {
			runs++
			one = ses
		}
		run = ses
	}
	if runs > 1 {
		rio.nTo = n
		return
	}
	// One run (a session's datagrams, perhaps after dropped ones).
	from, to := -1, 0
	for i := range n {
		if rio.to[i] != nil {
			if from < 0 {
				from = i
			}
			to = i + 1
		}
		rio.to[i] = nil
	}
	if from >= 0 {
		l.forward(one, from, to)
	}
}

// sessionFor returns the session of message i, started if new and moved
// if its backend failed; nil when the datagram is dropped.
func (l *listener) sessionFor(i int) *session {
	client, ok := l.lp.in.names[i].addrPort()
	if !ok {
		return nil
	}
	if ses := l.sessions[client]; ses != nil {
		if stale(ses) {
			l.move(ses)
		}
		return ses
	}
	return l.start(client, i)
}

// forward sends client messages [from, to) of one session to its backend.
// A refusal the backend reported since the last send comes back here as
// ECONNREFUSED: the session moves and the datagrams go to the new backend.
func (l *listener) forward(ses *session, from, to int) {
	hs := l.lp.in.toConnected(from, to)
	for moves := 0; len(hs) > 0; {
		m, err := sysSendmmsg(ses.fd, hs)
		if err == nil {
			l.sent(ses, hs[:m])
			hs = hs[m:]
			continue
		}
		if err == unix.EINTR {
			continue
		}
		if movable(err) && moves < maxTries {
			// The error was an earlier datagram's, and reading it cleared
			// it: these go to another backend, or again to this one when
			// there is no other (it may be back).
			moves++
			l.refusedBy(ses, err)
			l.move(ses)
			continue
		}
		l.s.metrics.drop(dropSendError, len(hs))
		l.s.log.Debug("send to backend", "backend", ses.b.ID(), "client", ses.client, "err", err, "dropped", len(hs))
		return
	}
}

// movable reports errors of a connected socket that say the backend is
// gone rather than that this datagram failed.
func movable(err error) bool {
	switch err {
	case unix.ECONNREFUSED, unix.EHOSTUNREACH, unix.ENETUNREACH, unix.EHOSTDOWN:
		return true
	}
	return false
}

// sent accounts for datagrams sent to the session's backend.
func (l *listener) sent(ses *session, hs []unix.Mmsghdr) {
	var bytes int64
	for i := range hs {
		bytes += int64(hs[i].Len)
	}
	ses.toBackend += bytes
	ses.dgUp += int64(len(hs))
	ses.b.AddBytes(bytes, 0)
	ses.st.toBackend.Add(uint64(len(hs)))
	if r := l.cfg.Responses; r > 0 {
		ses.owed += int64(len(hs)) * int64(r)
	}
	l.touch(ses)
}

// fromBackend receives one batch of replies from a session's backend into
// the reply batch, addressed to the session's client.
func (l *listener) fromBackend(ses *session) {
	lp := l.lp
	out := lp.out
	if out.n == batchSize || (out.n > 0 && lp.outLn != l) {
		lp.flush()
	}
	lp.outLn = l
	k := out.n
	n, err := sysRecvmmsg(ses.fd, out.armRecv(k, false, false))
	if err != nil {
		l.recvFailed(ses, err)
		return
	}
	var bytes int64
	for i := k; i < k+n; i++ {
		bytes += int64(out.received(i))
		out.address(i, &ses.peer, &ses.ctrl, ses.ctrlLen)
	}
	out.n += n
	l.replied(ses, n, bytes)
}

// recvFailed handles an error of a receive from a session's backend.
func (l *listener) recvFailed(ses *session, err error) {
	switch {
	case err == unix.EAGAIN || err == unix.EINTR:
	case movable(err):
		l.refusedBy(ses, err)
	default:
		l.s.log.Debug("receive from backend", "backend", ses.b.ID(), "err", err)
	}
}

// replied accounts for n replies of the session's backend, bytes in all,
// put in the reply batch; the last one expected ends the session.
func (l *listener) replied(ses *session, n int, bytes int64) {
	ses.toClient += bytes
	ses.dgDown += int64(n)
	ses.b.AddBytes(0, bytes)
	ses.st.toClient.Add(uint64(n))
	if !ses.answered {
		ses.answered = true
		l.s.observer.DialSucceeded(ses.b)
	}
	l.touch(ses)
	if l.cfg.Responses > 0 {
		if ses.owed -= int64(n); ses.owed <= 0 {
			l.end(ses, EndResponses)
		}
	}
}

// flush sends the collected replies to their clients. A datagram the
// kernel does not take (a full send buffer) is dropped and counted.
func (lp *loop) flush() {
	out := lp.out
	hs := out.hdrs[:out.n]
	out.n = 0
	l := lp.outLn
	for len(hs) > 0 {
		m, err := sysSendmmsg(l.fd, hs)
		switch {
		case err == nil:
			hs = hs[m:]
		case err == unix.EINTR:
		case err == unix.EAGAIN || err == unix.ENOBUFS:
			l.s.metrics.drop(dropSendError, len(hs))
			return
		default:
			// One bad destination: skip it and send the rest.
			l.s.metrics.drop(dropSendError, 1)
			l.s.log.Debug("send to client", "err", err)
			hs = hs[1:]
		}
	}
}

// connect opens a socket connected to b.
func (lp *loop) connect(b *backends.Backend) (int, error) {
	ap, err := netip.ParseAddrPort(b.Address())
	if err != nil {
		return -1, fmt.Errorf("backend address %q: want IP:port", b.Address())
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	family := unix.AF_INET6
	if ap.Addr().Is4() {
		family = unix.AF_INET
	}
	fd, err := evloop.Socket(family, unix.SOCK_DGRAM)
	if err != nil {
		return -1, err
	}
	lp.dst.set(ap, family == unix.AF_INET6)
	if err := sysConnect(fd, &lp.dst); err != nil {
		_ = evloop.Close(fd)
		return -1, err
	}
	return fd, nil
}

// abortAll ends every session of the listener and returns how many.
func (l *listener) abortAll(how string) int {
	n := len(l.sessions)
	for s := l.expiry.head; s != nil; s = l.expiry.head {
		l.end(s, how)
	}
	return n
}
