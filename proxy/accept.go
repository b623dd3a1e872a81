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
// minBackoff to maxBackoff.
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
// connections can all land on one (8 bulk connections on one loop of two
// move 1.9 GB/s where spread they move 2.3). The slack keeps steady
// churn, where loads differ by a few, from paying an eventfd round trip
// per connection.
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
