//go:build linux

package proxy

import (
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Accept backoff: running out of descriptors (EMFILE, ENFILE) or memory
// makes accept fail while the pending connection stays queued, so retrying
// at once would spin. Waits double from minBackoff to maxBackoff and reset
// after the next success.
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = time.Second
)

// acceptBatch bounds the connections one wakeup accepts, so a flood of new
// connections does not starve the loop's open ones. The listener is
// level-triggered: what is left wakes the next epoll_wait.
const acceptBatch = 64

// acceptSome accepts what the listener holds: every connection queued, up
// to acceptBatch, until accept finds the queue empty; or, while they
// arrive one at a time, one, without that last accept. At a few hundred
// connections a second every event holds one connection, and the accept
// that finds none was one of the 30 or so system calls of a TLS
// connection routed by SNI.
func (a *acceptor) acceptSome() {
	l := a.l
	if a.one && l.ticks == a.took+1 {
		// Reported again by the wakeup right after a take: the queue
		// held more (or one came at once), so drain it.
		a.one = false
	}
	for i := range acceptBatch {
		fd, err := sysAccept(a.ln.fd, &l.rsa, &l.rlen)
		switch err {
		case nil:
			a.backoff = 0
			a.place(fd, sockaddrToAddrPort(&l.rsa))
			if a.one {
				a.took = l.ticks
				return
			}
			continue
		case unix.EAGAIN:
			a.one, a.took = i == 1, l.ticks
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
		a.pause(err)
		return
	}
}

// pause deregisters the listener from this loop for a backoff that
// doubles from minBackoff to maxBackoff.
func (a *acceptor) pause(err error) {
	l := a.l
	a.backoff = min(max(2*a.backoff, minBackoff), maxBackoff)
	a.ln.s.log.Warn("accept failed; retrying", "err", os.NewSyscallError("accept4", err), "backoff", a.backoff)
	if !a.paused {
		if cerr := l.el.Del(a.ln.fd); cerr != nil {
			a.ln.s.log.Error("deregister listener", "err", cerr)
		}
		l.paused = append(l.paused, a)
	}
	a.paused = true
	a.resumeAt = l.el.Now + int64(a.backoff)
}

// resume registers the listener again after a backoff.
func (a *acceptor) resume() {
	l := a.l
	l.unpause(a)
	a.paused = false
	if err := l.el.Add(a.ln.fd, unix.EPOLLIN|unix.EPOLLEXCLUSIVE, l.el.NextGen(), a); err != nil {
		a.pause(err)
	}
}

// unpause drops a from the loop's paused listeners.
func (l *loop) unpause(a *acceptor) {
	for i, p := range l.paused {
		if p == a {
			last := len(l.paused) - 1
			l.paused[i] = l.paused[last]
			l.paused[last] = nil
			l.paused = l.paused[:last]
			return
		}
	}
}

// resumeDue registers again the listeners whose backoff has passed.
func (l *loop) resumeDue() {
	for i := len(l.paused) - 1; i >= 0; i-- {
		if i < len(l.paused) && l.el.Now >= l.paused[i].resumeAt {
			l.paused[i].resume()
		}
	}
}

// resumeNext is the loop clock of the next resumption, -1 if none.
func (l *loop) resumeNext() int64 {
	next := int64(-1)
	for _, a := range l.paused {
		if next < 0 || a.resumeAt < next {
			next = a.resumeAt
		}
	}
	return next
}

// place serves a new connection on this loop or hands it to the loop
// pickLoop names (place.go).
func (a *acceptor) place(fd int, peer netip.AddrPort) {
	l, s := a.l, a.ln.s
	t := a.ln.target(l)
	if t == l {
		l.admit(s, fd, peer, a.ln.port)
		return
	}
	// Counted now, so that the rest of a burst spreads too, and held in
	// the service's WaitGroup until adopted: Shutdown may be waiting.
	t.load.Add(1)
	s.wg.Add(1)
	if !t.post(request{kind: reqAdopt, svc: s, fd: fd, ap: peer, port: a.ln.port}) {
		t.load.Add(-1)
		closeFD(fd, true)
		s.wg.Done()
	}
}

// adopt serves a connection another loop accepted and placed here.
func (l *loop) adopt(s *Service, fd int, peer netip.AddrPort, port uint16) {
	l.load.Add(-1) // admit counts it again if it is served
	if l.el.Stopping() {
		closeFD(fd, true)
	} else {
		l.admit(s, fd, peer, port)
	}
	s.wg.Done()
}
