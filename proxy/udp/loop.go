//go:build linux

package udp

import (
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tierlb/tierlb/backends"

	"github.com/tierlb/tierlb/proxy/internal/wake"
)

const (
	maxEvents = 128
	// genReserved tags the epoll registrations of the listening socket and
	// the eventfd; session generations skip it.
	genReserved = ^uint32(0)
)

// loop is one event loop: a goroutine sleeping in epoll_wait on its own
// epoll set, which holds the loop's listening socket, its eventfd and the
// connected backend socket of each of its sessions. Registrations are
// level-triggered: each wakeup moves at most one batch per socket, so a
// busy client does not starve the others, and what is left wakes the next
// epoll_wait.
type loop struct {
	s       *Service
	lfd     int
	v6      bool // the listening socket is AF_INET6 (dual-stack when wildcard)
	pktinfo bool // wildcard listener: replies carry their source address
	epfd    int

	base time.Time
	now  int64     // ns since base, read once per wakeup
	cfg  *settings // read once per wakeup

	events [maxEvents]unix.EpollEvent
	ev     unix.EpollEvent // epoll_ctl's argument
	in     *batch          // datagrams from clients
	out    *batch          // replies to clients, flushed once per wakeup
	order  [maxTries]*backends.Backend
	dst    sockaddr // connect's argument

	sessions map[netip.AddrPort]*session
	fds      []*session // by backend socket descriptor
	expiry   sessionList
	free     []*session
	gen      uint32

	draining bool // no new sessions
	empty    bool // drained and told the service so
	stopping bool

	// reqs is what other goroutines ask of the loop.
	reqs wake.Queue[request]
}

type reqKind uint8

const (
	reqDrain    reqKind = iota // take no new sessions; tell the service when none is left
	reqAbortAll                // end every session (drain deadline)
	reqStop                    // end every session and leave the loop
	reqCall                    // run fn in the loop (tests, inspection)
)

// request is a message from another goroutine to a loop.
type request struct {
	kind reqKind
	fn   func()
	done chan<- int
}

func newLoop(s *Service, lfd int, v6, wildcard bool) (*loop, error) {
	l := &loop{
		s: s, lfd: lfd, v6: v6, pktinfo: wildcard,
		base: time.Now(), cfg: s.cfg.Load(),
		in: newBatch(), out: newBatch(),
		sessions: make(map[netip.AddrPort]*session),
	}
	var err error
	if l.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("create epoll: %w", err)
	}
	if err = l.reqs.Open(); err != nil {
		unix.Close(l.epfd)
		return nil, fmt.Errorf("create eventfd: %w", err)
	}
	for _, fd := range []int{l.reqs.FD(), l.lfd} {
		if err := l.ctl(fd, genReserved); err != nil {
			l.reqs.Close()
			unix.Close(l.epfd)
			return nil, fmt.Errorf("register socket: %w", err)
		}
	}
	return l, nil
}

func (l *loop) ctl(fd int, gen uint32) error {
	l.ev = unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd), Pad: int32(gen)}
	return sysEpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &l.ev)
}

func (l *loop) clock() int64 { return int64(time.Since(l.base)) }

// run is the loop; it closes the loop's descriptors, the listening socket
// included, when it leaves.
func (l *loop) run() {
	defer l.closeFDs()
	for !l.stopping {
		n, err := unix.EpollWait(l.epfd, l.events[:], l.waitMillis())
		l.now = l.clock()
		l.cfg = l.s.cfg.Load()
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			l.s.log.Error("epoll_wait failed: loop stopped", "err", err)
			l.abortAll("error: epoll_wait: " + err.Error())
			return
		}
		for i := range n {
			l.dispatch(&l.events[i])
		}
		l.flush()
		l.expire()
		if l.draining && !l.empty && len(l.sessions) == 0 {
			l.empty = true
			l.s.loopEmpty()
		}
	}
}

func (l *loop) dispatch(ev *unix.EpollEvent) {
	fd := int(ev.Fd)
	if uint32(ev.Pad) == genReserved {
		switch fd {
		case l.reqs.FD():
			l.requests()
		case l.lfd:
			l.fromClients()
		}
		return
	}
	if fd >= len(l.fds) {
		return
	}
	ses := l.fds[fd]
	if ses == nil || ses.gen != uint32(ev.Pad) {
		return // a session ended earlier in this batch; its descriptor may be reused
	}
	l.fromBackend(ses)
}

// fromClients receives one batch from the listening socket and forwards
// each datagram on its session's backend socket; consecutive datagrams of
// one session go in one sendmmsg.
func (l *loop) fromClients() {
	in := l.in
	n, err := sysRecvmmsg(l.lfd, in.armRecv(0, true, l.pktinfo))
	if err != nil {
		if err != unix.EAGAIN && err != unix.EINTR {
			l.s.log.Warn("receive from clients", "err", err)
		}
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

// sessionFor returns the session of message i, started if new and moved
// if its backend failed; nil when the datagram is dropped.
func (l *loop) sessionFor(i int) *session {
	client, ok := l.in.names[i].addrPort()
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
func (l *loop) forward(ses *session, from, to int) {
	hs := l.in.toConnected(from, to)
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
func (l *loop) sent(ses *session, hs []unix.Mmsghdr) {
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
func (l *loop) fromBackend(ses *session) {
	out := l.out
	if out.n == batchSize {
		l.flush()
	}
	k := out.n
	n, err := sysRecvmmsg(ses.fd, out.armRecv(k, false, false))
	if err != nil {
		switch {
		case err == unix.EAGAIN || err == unix.EINTR:
		case movable(err):
			l.refusedBy(ses, err)
		default:
			l.s.log.Debug("receive from backend", "backend", ses.b.ID(), "err", err)
		}
		return
	}
	var bytes int64
	for i := k; i < k+n; i++ {
		bytes += int64(out.received(i))
		out.address(i, &ses.peer, &ses.ctrl, ses.ctrlLen)
	}
	out.n += n
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
func (l *loop) flush() {
	out := l.out
	hs := out.hdrs[:out.n]
	out.n = 0
	for len(hs) > 0 {
		m, err := sysSendmmsg(l.lfd, hs)
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
func (l *loop) connect(b *backends.Backend) (int, error) {
	ap, err := netip.ParseAddrPort(b.Address())
	if err != nil {
		return -1, fmt.Errorf("backend address %q: want IP:port", b.Address())
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	family := unix.AF_INET6
	if ap.Addr().Is4() {
		family = unix.AF_INET
	}
	fd, err := sysSocket(family)
	if err != nil {
		return -1, err
	}
	l.dst.set(ap, family == unix.AF_INET6)
	if err := sysConnect(fd, &l.dst); err != nil {
		_ = sysClose(fd)
		return -1, err
	}
	return fd, nil
}

// post queues a request and wakes the loop when the queue was empty. It
// returns false once the loop has stopped.
func (l *loop) post(r request) bool { return l.reqs.Post(r) }

// requests runs the queued requests.
func (l *loop) requests() {
	reqs := l.reqs.Take()
	for i := range reqs {
		r := &reqs[i]
		switch r.kind {
		case reqDrain:
			l.draining = true
		case reqAbortAll:
			r.done <- l.abortAll(EndDrain)
		case reqStop:
			l.stopping = true
			r.done <- l.abortAll(EndDrain)
		case reqCall:
			r.fn()
			r.done <- 0
		}
	}
	l.reqs.Done(reqs)
}

// abortAll ends every session of the loop and returns how many.
func (l *loop) abortAll(how string) int {
	n := len(l.sessions)
	for s := l.expiry.head; s != nil; s = l.expiry.head {
		l.end(s, how)
	}
	return n
}

// closeFDs marks the loop closed for posters, then closes its descriptors.
func (l *loop) closeFDs() {
	l.reqs.Close()
	unix.Close(l.epfd)
	unix.Close(l.lfd)
}
