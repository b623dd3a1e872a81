//go:build linux

// Package evloop is the event loop that tierlb's TCP and UDP data paths
// share: a goroutine sleeping in a blocking epoll_wait on its own epoll
// set, dispatching each ready descriptor to the handler that registered
// it. A Set is the process's loops; every service of either protocol
// registers its sockets in them, so the number of loops, and of threads,
// does not depend on the number of services.
//
//	set, err := evloop.NewSet(n)
//	go set.Run(ctx)                        // until ctx is done and no holder is left
//	set.Acquire()                          // a service that registers sockets
//	l := set.Loops()[0]
//	l.Post(func() { l.Add(fd, unix.EPOLLIN, gen, h) }) // registration runs in the loop
//	...
//	set.Release()
//
// A protocol keeps its per-loop state (buffers, descriptor tables, timers)
// in a Driver attached to the loop: the loop calls Tick after each batch
// of events and sleeps no longer than the drivers' earliest Deadline.
package evloop

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tierlb/tierlb/proxy/internal/wake"
)

const (
	maxEvents = 256
	// yieldEvery is how often a busy loop yields to Go's scheduler. A
	// goroutine that has not been through the scheduler for 10 ms is
	// preempted by the runtime's monitor (sysmon) with a signal, and if
	// it sleeps in epoll_wait then, its P is taken away and the monitor
	// goes back to polling every 20µs. A loop that yields first is left
	// alone, and the monitor sleeps.
	yieldEvery = 8 * time.Millisecond
	// idleWindows is how many raw waits in a row an idle loop makes,
	// yielding between them, before it parks in Go's netpoller (park.go)
	// while it is the only loop awake: a raw wait that ends in an event
	// costs one wakeup, where a park costs some eight system calls and a
	// thread handoff, and once every P is idle sysmon sleeps deeply and
	// polls every 20µs after its next wakeup, so the pauses between the
	// connections of a steady stream (tens of ms) cost less in raw
	// waits; a loop idle longer than idleWindows×yieldEvery (about 100
	// ms) parks, and costs nothing more until its next event. While
	// another loop is awake, sysmon keeps its pace whatever this one
	// does, and an idle window costs more than a park: its raw wait ends
	// in a timer wakeup, and it would do so a dozen times before parking
	// anyway. So a loop parks after one idle window then.
	idleWindows = 12
)

// Handler serves the events of the descriptors it registered. ev.Fd is
// the descriptor and ev.Pad the generation it was registered with: a
// handler compares it with its own record, because a descriptor closed
// earlier in the same batch may already be reused.
type Handler interface {
	Ready(ev *unix.EpollEvent)
}

// Driver is a protocol's state in one loop.
type Driver interface {
	// Tick runs after each batch of events: deadlines, deferred work,
	// batched sends.
	Tick()
	// Deadline is the loop clock (Loop.Now) of the driver's next
	// deadline; -1 for none, 0 or less than Now to poll without sleeping.
	Deadline() int64
	// Stop ends what the driver still holds and closes its descriptors;
	// the loop is leaving.
	Stop()
}

// Loop is one event loop. Its fields and methods belong to its goroutine
// except Post, Call and Index.
type Loop struct {
	index int
	epfd  int
	base  time.Time
	// Now is the loop clock (ns since the loop was made), read once per
	// wakeup.
	Now     int64
	yieldAt int64

	// procs is GOMAXPROCS when the loop started: with more Ps than the
	// loops running in the process, a loop may keep its P while it waits
	// (run says why).
	procs int32

	events   [maxEvents]unix.EpollEvent
	ev       unix.EpollEvent // epoll_ctl's argument
	handlers []Handler       // by descriptor
	drivers  []attached
	gen      uint32
	stopping bool

	ctl  wake.Queue[func()] // work other goroutines hand the loop
	park *parking           // how an idle loop sleeps
	log  *slog.Logger

	rings bool // drivers may batch through io_uring (Rings)
}

type attached struct {
	key any
	d   Driver
}

// running counts the loops running in the process, of every Set.
var running atomic.Int32

// awake counts the running loops that are not parked (park.go).
var awake atomic.Int32

// parkHook, when a test sets it before the loops run, learns of each park
// and of how many idle windows the loop waited before it.
var parkHook func(l *Loop, windows int)

// genReserved tags the loop's own eventfd; generations skip it.
const genReserved = ^uint32(0)

// Rings reports whether the loop's drivers may batch their syscalls
// through io_uring: the process's engine.io_uring.
func (l *Loop) Rings() bool { return l.rings }

// Log is the logger of the loop's set.
func (l *Loop) Log() *slog.Logger { return l.log }

func newLoop(index int, log *slog.Logger) (*Loop, error) {
	l := &Loop{index: index, base: time.Now(), log: log}
	var err error
	if l.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("create epoll: %w", err)
	}
	if err = l.ctl.Open(); err != nil {
		unix.Close(l.epfd)
		return nil, fmt.Errorf("create eventfd: %w", err)
	}
	if err := l.Add(l.ctl.FD(), unix.EPOLLIN, genReserved, nil); err != nil {
		l.closeFDs()
		return nil, fmt.Errorf("register eventfd: %w", err)
	}
	l.park = newParking(l.epfd, l.events[:])
	return l, nil
}

// Index is the loop's place in its Set.
func (l *Loop) Index() int { return l.index }

// Clock reads the loop clock now.
func (l *Loop) Clock() int64 { return int64(time.Since(l.base)) }

// Stopping reports whether the loop is leaving: drivers keep nothing for
// later then (idle pipes, spare structs).
func (l *Loop) Stopping() bool { return l.stopping }

// NextGen returns a new registration generation. One counter serves every
// driver of the loop, so a stale event can never match another driver's
// registration of a reused descriptor.
func (l *Loop) NextGen() uint32 {
	l.gen++
	if l.gen == genReserved {
		l.gen = 0
	}
	return l.gen
}

// Add registers fd for events, tagged with gen, served by h.
func (l *Loop) Add(fd int, events, gen uint32, h Handler) error {
	l.ev = unix.EpollEvent{Events: events, Fd: int32(fd), Pad: int32(gen)}
	if err := EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &l.ev); err != nil {
		return err
	}
	l.setHandler(fd, h)
	return nil
}

// Adopt makes h the handler of fd's events, tagged with gen, and fills
// ev in for the EPOLL_CTL_ADD that registers fd in the returned epoll
// descriptor, which the caller makes itself (batched through io_uring
// with other work). Until then fd has no events.
func (l *Loop) Adopt(fd int, events, gen uint32, h Handler, ev *unix.EpollEvent) (epfd int) {
	*ev = unix.EpollEvent{Events: events, Fd: int32(fd), Pad: int32(gen)}
	l.setHandler(fd, h)
	return l.epfd
}

// Del deregisters fd without closing it. A descriptor that is closed
// needs no Del: the kernel forgets it.
func (l *Loop) Del(fd int) error {
	if fd < len(l.handlers) {
		l.handlers[fd] = nil
	}
	return EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, fd, nil)
}

func (l *Loop) setHandler(fd int, h Handler) {
	if fd >= len(l.handlers) {
		n := max(2*len(l.handlers), fd+1, 1024)
		hs := make([]Handler, n)
		copy(hs, l.handlers)
		l.handlers = hs
	}
	l.handlers[fd] = h
}

// Driver returns the driver attached under key, making it with mk on
// first use.
func (l *Loop) Driver(key any, mk func(*Loop) Driver) Driver {
	for _, a := range l.drivers {
		if a.key == key {
			return a.d
		}
	}
	d := mk(l)
	l.drivers = append(l.drivers, attached{key, d})
	return d
}

// Post hands fn to the loop, which runs it between two epoll_waits; false
// once the loop has stopped. Any goroutine.
func (l *Loop) Post(fn func()) bool { return l.ctl.Post(fn) }

// Call runs fn in the loop and waits for it; false if the loop has
// stopped. Any goroutine but the loop's own.
func (l *Loop) Call(fn func()) bool {
	done := make(chan struct{})
	if !l.ctl.Post(func() { fn(); close(done) }) {
		return false
	}
	<-done
	return true
}

// run is the loop. It sleeps in a blocking epoll_wait, so the kernel, not
// Go's scheduler, wakes it when a socket is ready. The goroutine is not
// locked to its thread: the scheduler preempts a loop that stays busy for
// 10 ms, and a locked goroutine would pay two futex handoffs to get its
// thread back.
//
// Between two yields a loop with a spare P beside it waits in a raw
// epoll_wait, still holding its P, as long as the wait ends before the
// next yield is due: a goroutine in a system call that blocks has its P
// taken by sysmon, which keeps sysmon polling every 20µs while loops come
// and go (7% of the CPU of a run of short TLS connections), and the loop
// then pays to get a P back on every wakeup. A loop that finds nothing
// before its yield is due yields and waits raw again, up to idleWindows
// times in a row, or parks at once while another loop is awake; one idle
// longer than that parks in Go's netpoller, which gives its P back
// without sysmon (park.go). Without a spare P the
// raw wait would keep other goroutines off the CPU, so every wait is the
// ordinary, scheduler-aware one.
func (l *Loop) run() {
	defer l.stop()
	for !l.stopping {
		n, err := l.wait()
		l.Now = l.Clock()
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			l.log.Error("epoll_wait failed: loop stopped", "err", err)
			return
		}
		for i := range n {
			ev := &l.events[i]
			fd := int(ev.Fd)
			if uint32(ev.Pad) == genReserved && fd == l.ctl.FD() {
				l.requests()
				continue
			}
			if fd < len(l.handlers) {
				if h := l.handlers[fd]; h != nil {
					h.Ready(ev)
				}
			}
		}
		for _, a := range l.drivers {
			a.d.Tick()
		}
		if l.Now >= l.yieldAt {
			l.yieldAt = l.Now + int64(yieldEvery)
			yield()
		}
	}
}

// wait waits for events until the drivers' next deadline (see run).
func (l *Loop) wait() (int, error) {
	timeout := l.waitMillis()
	if timeout == 0 || l.procs <= running.Load() {
		return unix.EpollWait(l.epfd, l.events[:], timeout)
	}
	since := l.Clock() // found nothing since
	for idle := 0; ; idle++ {
		// Until the next yield at most, rounded down: the raw wait must
		// end before sysmon would preempt the loop.
		raw := int((l.yieldAt - l.Clock()) / int64(time.Millisecond))
		if raw > 0 {
			if timeout > 0 && timeout <= raw {
				return rawEpollWait(l.epfd, l.events[:], timeout)
			}
			if n, err := rawEpollWait(l.epfd, l.events[:], raw); n != 0 || err != nil {
				return n, err
			}
		}
		yield()
		l.yieldAt = l.Clock() + int64(yieldEvery)
		timeout = l.waitMillis()
		// A busy loop whose slice ran out between two events has not
		// been idle: only a wait that found nothing for half a slice
		// counts as an idle window here.
		idleWindow := l.Clock()-since >= int64(yieldEvery/2)
		if timeout == 0 || idle >= idleWindows || (idleWindow && awake.Load() > 1) {
			// Idle for a while, or for a window while another loop is
			// awake: give the P back and sleep.
			if timeout != 0 {
				if parkHook != nil {
					parkHook(l, idle+1)
				}
				awake.Add(-1)
				n, err := l.park.wait(timeout)
				awake.Add(1)
				if err != errNotParked {
					return n, err
				}
			}
			return unix.EpollWait(l.epfd, l.events[:], timeout)
		}
	}
}

func (l *Loop) requests() {
	fns := l.ctl.Take()
	for _, fn := range fns {
		fn()
	}
	l.ctl.Done(fns)
}

// waitMillis is how long epoll_wait may sleep: until the drivers' next
// deadline, rounded up so a wakeup never comes just before it.
func (l *Loop) waitMillis() int {
	next := int64(-1)
	for _, a := range l.drivers {
		if t := a.d.Deadline(); t >= 0 && (next < 0 || t < next) {
			next = t
		}
	}
	if next < 0 {
		return -1
	}
	d := next - l.Clock()
	if d <= 0 {
		return 0
	}
	return int(min((d+int64(time.Millisecond)-1)/int64(time.Millisecond), 1<<30))
}

// stop ends the drivers, refuses further posts and closes the loop's
// descriptors. Work posted but not run is run first: it may hold a
// descriptor to close.
func (l *Loop) stop() {
	l.stopping = true
	l.requests()
	for _, a := range l.drivers {
		a.d.Stop()
	}
	l.closeFDs()
}

func (l *Loop) closeFDs() {
	l.ctl.Close()
	// Posts that raced the close ran nowhere; run them now so that what
	// they hold is released.
	l.requests()
	unix.Close(l.epfd)
}
