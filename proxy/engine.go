//go:build linux

package proxy

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tierlb/tierlb/proxy/internal/evloop"
	"github.com/tierlb/tierlb/proxy/internal/uring"
)

// Loops is the process's set of event loops, shared by every TCP service,
// every Front and every UDP service (udp.Options.Loops) that is given it.
// cmd/ makes one with NewLoops and runs it for the life of the process:
//
//	loops, err := proxy.NewLoops(n, log)
//	go loops.Run(ctx) // stops once ctx is done and every service has shut down
//
// A service registers its listening sockets in every loop and unregisters
// them when it stops accepting; it starts no goroutine of its own.
type Loops = evloop.Set

// NewLoops makes n event loops; 0 means one per P (GOMAXPROCS). A loop
// sleeps in a blocking epoll_wait, so the caller should leave Go's
// scheduler a P more than the loops (see doc.go).
func NewLoops(n int, log *slog.Logger) (*Loops, error) {
	return NewLoopsWith(LoopsConfig{N: n, Log: log, IOUring: true})
}

// LoopsConfig is how the process's loops run.
type LoopsConfig struct {
	N   int          // how many; 0 means one per P
	Log *slog.Logger // nil discards
	// IOUring lets a loop batch the small messages of a wakeup through
	// io_uring where the kernel allows it (batch.go); false sends each
	// with its own recv and send.
	IOUring bool
}

// NewLoopsWith makes the loops cfg describes.
func NewLoopsWith(cfg LoopsConfig) (*Loops, error) {
	n := cfg.N
	if n < 0 {
		return nil, fmt.Errorf("loops %d: want 0 (one per P) or more", n)
	}
	if n == 0 {
		n = runtime.GOMAXPROCS(0)
	}
	return evloop.NewSetWith(n, cfg.Log, cfg.IOUring)
}

// IOUringProbe sets up and closes a ring as the loops would: nil if
// they can batch through io_uring, else why not.
func IOUringProbe() error {
	r, err := uring.New(batchMax)
	if err != nil {
		return err
	}
	r.Close()
	return nil
}

// listener is one listening socket of a service (a port range has one per
// port). The same socket is registered in every loop with EPOLLEXCLUSIVE,
// so that one loop wakes per connection (doc.go says why not a
// SO_REUSEPORT group).
type listener struct {
	s    *Service
	fd   int
	addr *net.TCPAddr
	port uint16      // the bound port, which the access log and a PROXY header carry
	accs []*acceptor // one per loop while registered; fixed once made
}

// acceptor is a listener's registration in one loop.
type acceptor struct {
	ln       *listener
	l        *loop
	paused   bool // deregistered for a backoff after an accept error
	stopped  bool // deregistered for good
	resumeAt int64
	backoff  time.Duration
	// one: connections have been arriving one at a time (the last drain
	// of the queue found one), so an event takes one and skips the accept
	// that would only find the queue empty. The listener is
	// level-triggered: a connection left behind is reported again by the
	// loop's next epoll_wait, and a report in the wakeup right after a
	// take turns draining back on.
	one  bool
	took uint64 // the loop's tick count at the latest take or drain
}

// newListener takes over a bound listening socket: the descriptor is
// duplicated for the loops and Go's own closed, so that Go's netpoller
// stops hearing about every new connection.
func newListener(s *Service, ln *net.TCPListener) (*listener, error) {
	defer ln.Close()
	rc, err := ln.SyscallConn()
	if err != nil {
		return nil, err
	}
	var out *listener
	var lerr error
	if err := rc.Control(func(fd uintptr) { out, lerr = listenerFromFD(s, int(fd)) }); err != nil {
		return nil, err
	}
	return out, lerr
}

// listenerFromFD makes a listener of a duplicate of fd, which must be a
// bound, listening TCP socket.
func listenerFromFD(s *Service, fd int) (*listener, error) {
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return nil, fmt.Errorf("listening socket %d: %w", fd, err)
	}
	acc, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil {
		return nil, fmt.Errorf("listening socket %d: %w", fd, err)
	}
	if typ != unix.SOCK_STREAM || acc != 1 {
		return nil, fmt.Errorf("socket %d: not a listening TCP socket", fd)
	}
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("duplicate listener: %w", err)
	}
	if err := unix.SetNonblock(dup, true); err != nil {
		unix.Close(dup)
		return nil, fmt.Errorf("listener: %w", err)
	}
	if err := setAcceptOptions(dup, s.routes != nil); err != nil {
		unix.Close(dup)
		return nil, fmt.Errorf("listener: %w", err)
	}
	ap, err := localAddrPort(dup)
	if err != nil {
		unix.Close(dup)
		return nil, fmt.Errorf("listener address: %w", err)
	}
	return &listener{s: s, fd: dup, addr: net.TCPAddrFromAddrPort(ap), port: ap.Port()}, nil
}

// register adds the listener to every loop of set; from then on the loops
// accept on it. Loops that have stopped are skipped.
func (ln *listener) register(set *Loops) error {
	ls := set.Loops()
	accs := make([]*acceptor, len(ls))
	set.Each(func(el *evloop.Loop) {
		accs[el.Index()] = &acceptor{ln: ln, l: tcpLoop(el)}
	})
	for i, a := range accs {
		if a == nil { // a stopped loop
			accs[i] = &acceptor{ln: ln, stopped: true}
		}
	}
	ln.accs = accs
	var errs []error
	set.Each(func(el *evloop.Loop) {
		a := accs[el.Index()]
		if a.stopped {
			return
		}
		if err := el.Add(ln.fd, unix.EPOLLIN|unix.EPOLLEXCLUSIVE, el.NextGen(), a); err != nil {
			a.stopped = true
			errs = append(errs, err)
		}
	})
	if len(errs) > 0 {
		ln.unregister(set)
		return fmt.Errorf("register listener %s: %w", ln.addr, errs[0])
	}
	return nil
}

// unregister takes the listener out of every loop without closing it.
// When it returns no loop accepts on it any more.
func (ln *listener) unregister(set *Loops) {
	if ln.accs == nil {
		return
	}
	set.Each(func(el *evloop.Loop) {
		if a := ln.accs[el.Index()]; a != nil {
			a.stop()
		}
	})
}

// close closes the socket; unregister first.
func (ln *listener) close() {
	if ln.fd >= 0 {
		unix.Close(ln.fd)
		ln.fd = -1
	}
}

// file returns a duplicate of the listening socket, for a successor
// process.
func (ln *listener) file() (*os.File, error) {
	fd, err := unix.FcntlInt(uintptr(ln.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("duplicate listener %s: %w", ln.addr, err)
	}
	return os.NewFile(uintptr(fd), "tcp:"+ln.addr.String()), nil
}

// target returns the loop to serve a connection that l accepted
// (pickLoop says which). Up to 64 loops it allocates nothing.
func (ln *listener) target(l *loop) *loop {
	var buf [64]int32
	loads := buf[:0]
	self := -1
	for i, a := range ln.accs {
		n := int32(-1) // a stopped loop takes nothing
		if a.l != nil {
			n = a.l.load.Load()
		}
		loads = append(loads, n)
		if a.l == l {
			self = i
		}
	}
	if self < 0 {
		return l
	}
	return ln.accs[pickLoop(loads, self)].l
}

// Ready accepts what the listener holds.
func (a *acceptor) Ready(*unix.EpollEvent) {
	if !a.paused && !a.stopped {
		a.acceptSome()
	}
}

// stop deregisters the listener from this loop for good.
func (a *acceptor) stop() {
	if a.stopped {
		return
	}
	if !a.paused {
		_ = a.l.el.Del(a.ln.fd)
	} else {
		a.l.unpause(a)
	}
	a.paused, a.stopped = false, true
}

// abortService ends svc's connections in every loop of set and returns
// how many.
func abortService(set *Loops, svc *Service, end string) int {
	n := 0
	set.Each(func(el *evloop.Loop) {
		n += tcpLoop(el).abortService(svc, end)
	})
	return n
}
