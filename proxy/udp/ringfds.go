//go:build linux

package udp

import (
	"golang.org/x/sys/unix"

	"github.com/tierlb/tierlb/proxy/internal/evloop"
)

// A session per query (DNS with udp.responses) opens, registers and
// closes a backend socket per query: the registrations go to the kernel
// in the wakeup's enter with the sends and receives, and the closes in
// one more at the end of the wakeup (ring.go).

// register adds a new session's backend socket to the loop's epoll set,
// now or with the wakeup's other work. The socket is new, so nothing can
// have arrived on it before the wakeup's sends; what arrives after waits
// for the registration, which reports it.
func (lp *loop) register(fd int, gen uint32) error {
	rio := &lp.rio
	if rio.ring == nil || rio.nAdd == maxAdds {
		return lp.el.Add(fd, unix.EPOLLIN, gen, lp)
	}
	a := &rio.adds[rio.nAdd]
	a.fd = fd
	rio.epfd = lp.el.Adopt(fd, unix.EPOLLIN, gen, lp, &a.ev)
	rio.nAdd++
	return nil
}

// unregistered drops the queued registration of a socket about to close.
func (rio *ringIO) unregistered(fd int) {
	for i := range rio.nAdd {
		if rio.adds[i].fd == fd {
			rio.nAdd--
			rio.adds[i] = rio.adds[rio.nAdd]
			return
		}
	}
}

// registered files the results of the registrations. One the ring lost is
// made the plain way.
func (lp *loop) registered(n int) {
	rio := &lp.rio
	for i := range n {
		a := &rio.adds[i]
		err := error(nil)
		switch {
		case !rio.done[addData+i]:
			err = evloop.EpollCtl(rio.epfd, unix.EPOLL_CTL_ADD, a.fd, &a.ev)
		case rio.res[addData+i] < 0:
			err = evloop.Errno(unix.Errno(-rio.res[addData+i]))
		}
		if err != nil {
			if ses := lp.fds[a.fd]; ses != nil {
				// Without its registration the session never hears its
				// backend; it still forwards, and times out.
				ses.ln.s.log.Warn("register backend socket", "backend", ses.b.ID(), "err", err)
			}
		}
	}
}

// closeSocket closes a backend socket now, or queues it for the ring.
// Until then it stays in the epoll set, and its events find no session.
func (lp *loop) closeSocket(fd int) {
	rio := &lp.rio
	if rio.ring == nil || rio.nClose == maxCloses {
		_ = evloop.Close(fd)
		return
	}
	rio.closes[rio.nClose] = fd
	rio.nClose++
}

// closeQueued closes the queued sockets: with one enter, or alone with
// close. If the ring fails, a socket whose close did not complete is
// closed the plain way: an operation the kernel took completes inline,
// so the ring did not take it.
func (lp *loop) closeQueued() {
	rio := &lp.rio
	n := rio.nClose
	rio.nClose = 0
	if n == 1 || rio.ring == nil {
		for _, fd := range rio.closes[:n] {
			_ = evloop.Close(fd)
		}
		return
	}
	for i, fd := range rio.closes[:n] {
		_ = rio.ring.CloseFD(fd, uint64(closeData+i))
	}
	clear(rio.done[closeData : closeData+n])
	lp.enter(n)
	for i, fd := range rio.closes[:n] {
		if !rio.done[closeData+i] {
			_ = evloop.Close(fd)
		}
	}
}
