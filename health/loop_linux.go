//go:build linux

package health

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// checkLoop runs every probe of the process's monitors on one goroutine,
// as HAProxy runs its checks as tasks of its threads: a schedule of
// probers by due time, and an epoll set on which tcp and http probes wait
// for their sockets. It sleeps until the next probe is due or a socket is
// ready, so a probe costs its few syscalls and no goroutine, timer,
// channel or allocation.
//
// The loop does not sleep in epoll_wait itself: its epoll set is a file in
// Go's poller, readable while a probe socket, the wake-up eventfd or the
// timerfd armed at the next due time is ready. Checks are sparse (one
// every few milliseconds), and a goroutine that sleeps in a system call
// that long has its P taken away by the runtime's monitor, which then
// polls every 20µs: that cost more than the probes. The due time is a
// timerfd in the set rather than a read deadline on it: a deadline's timer
// readies the goroutine from the timer code, which wakes a second thread
// to look for work, where an fd made ready is run by the thread that
// polled it; and with no Go timer pending the runtime's monitor thread
// sleeps through the loop's wake-ups (rawsys_linux.go says why the loop's
// system calls are raw for the same reason).
//
// Checkers that are not wire probes (docker, send-expect, a backend named
// by host name) run on a goroutine of their own per probe and hand their
// result back through the inbox; they are the slow kinds anyway (an API
// call, a reply to wait for).
//
// Everything but the inbox is owned by the loop's goroutine.
type checkLoop struct {
	epfd, evfd int
	tfd        int       // timerfd: wakes the loop at the next due time
	armed      time.Time // tfd's expiry; zero when disarmed
	fired      bool      // tfd expired and was not armed since: it stays readable
	clock      monoClock
	ep         *os.File // epfd in Go's poller
	queue      schedule
	owners     []*prober // by descriptor of a wire probe in flight
	events     [128]unix.EpollEvent
	ctx        context.Context // of run: parent of goroutine probes
	aside      sync.WaitGroup  // goroutine probes in flight

	mu       sync.Mutex
	inbox    []loopCmd
	spare    []loopCmd // the inbox's previous array, reused
	signaled bool      // evfd holds a wake-up not yet read
	closed   bool
}

// loopCmd is a request to the loop from another goroutine.
type loopCmd struct {
	op   uint8
	p    *prober
	err  error         // cmdResult
	done chan struct{} // cmdSync
}

const (
	cmdAdd      uint8 = iota // start probing p
	cmdRemove                // stop probing p, dropping a probe in flight
	cmdProbeNow              // probe p at once, or again once its probe ends
	cmdResult                // p's goroutine probe ended with err
	cmdSync                  // close done: the requests before it are applied
)

func newCheckLoop() (*checkLoop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("health checks: epoll_create1: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("health checks: eventfd: %w", err)
	}
	tfd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, fmt.Errorf("health checks: timerfd_create: %w", err)
	}
	fail := func(what string, err error) (*checkLoop, error) {
		unix.Close(epfd)
		unix.Close(evfd)
		unix.Close(tfd)
		return nil, fmt.Errorf("health checks: %s: %w", what, err)
	}
	for _, fd := range []int{evfd, tfd} {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return fail("epoll_ctl", err)
		}
	}
	// Non-blocking, so that os.NewFile puts it in Go's poller.
	if err := unix.SetNonblock(epfd, true); err != nil {
		return fail("epoll fd", err)
	}
	clock, err := newMonoClock()
	if err != nil {
		return fail("clock_gettime", err)
	}
	return &checkLoop{epfd: epfd, evfd: evfd, tfd: tfd, clock: clock, ep: os.NewFile(uintptr(epfd), "health check epoll")}, nil
}

// monoClock turns a time.Time into CLOCK_MONOTONIC nanoseconds, the clock
// of Go's monotonic readings, for the timerfd.
type monoClock struct {
	base time.Time
	mono int64
}

func newMonoClock() (monoClock, error) {
	// The Go reading first: the pair then maps a time to an instant a
	// little late, never early, and a timerfd that expired before the
	// loop's clock says the probe is due would wake the loop for nothing.
	base := time.Now()
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return monoClock{}, err
	}
	return monoClock{base: base, mono: ts.Nano()}, nil
}

func (c monoClock) at(t time.Time) int64 { return max(c.mono+int64(t.Sub(c.base)), 1) }

// arm sets the timerfd to expire at due (never when due is zero), unless
// it is set so already. Setting it also clears an expiry not yet read.
func (l *checkLoop) arm(due time.Time) error {
	if !l.fired && due.Equal(l.armed) {
		return nil
	}
	var spec unix.ItimerSpec // zero: disarm
	if !due.IsZero() {
		spec.Value = unix.NsecToTimespec(l.clock.at(due))
	}
	if err := rawTimerfdSettime(l.tfd, unix.TFD_TIMER_ABSTIME, &spec); err != nil {
		return fmt.Errorf("health checks: timerfd_settime: %w", err)
	}
	l.armed, l.fired = due, false
	return nil
}

// post hands cmd to the loop; after the loop has ended it is dropped and
// post returns false.
func (l *checkLoop) post(cmd loopCmd) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.inbox = append(l.inbox, cmd)
	l.signalLocked()
	return true
}

func (l *checkLoop) wake() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.signalLocked()
	}
}

func (l *checkLoop) signalLocked() {
	if l.signaled {
		return
	}
	l.signaled = true
	one := [8]byte{1}
	unix.Write(l.evfd, one[:]) // cannot fill up: one wake-up is pending at most
}

// run probes until ctx ends, then drops the probes in flight, waits for the
// goroutine probes and closes the loop. It fails only if epoll does.
func (l *checkLoop) run(ctx context.Context) error {
	l.ctx = ctx
	stop := context.AfterFunc(ctx, l.wake)
	defer stop()
	defer l.close()
	rc, err := l.ep.SyscallConn()
	if err != nil {
		return fmt.Errorf("health checks: %w", err)
	}
	var n int
	var werr error
	poll := func(fd uintptr) bool {
		n, werr = rawEpollWait(int(fd), l.events[:])
		return n > 0 || werr != nil && werr != unix.EINTR
	}
	now := time.Now()
	for ctx.Err() == nil {
		l.takeInbox(now)
		l.fire(now)
		var due time.Time // none: wait for a socket or a wake-up
		if p := l.queue.next(); p != nil {
			due = p.due
		}
		n, werr = 0, nil
		if !due.IsZero() && !due.After(now) {
			poll(uintptr(l.epfd)) // something is due already: look at the sockets without waiting
		} else {
			if err := l.arm(due); err != nil {
				return err
			}
			if err := rc.Read(poll); err != nil {
				return fmt.Errorf("health checks: wait: %w", err)
			}
		}
		now = time.Now()
		if werr != nil {
			// Only a broken epoll set gets here; retrying would spin.
			return fmt.Errorf("health checks: epoll_wait: %w", werr)
		}
		for i := range n {
			fd := int(l.events[i].Fd)
			switch fd {
			case l.evfd:
				var buf [8]byte
				unix.Read(l.evfd, buf[:])
				continue
			case l.tfd:
				l.fired = true // re-armed, which clears it, before the next wait
				continue
			}
			if fd < len(l.owners) && l.owners[fd] != nil {
				l.step(l.owners[fd], now)
			}
		}
	}
	return nil
}

// takeInbox applies the requests of other goroutines.
func (l *checkLoop) takeInbox(now time.Time) {
	l.mu.Lock()
	cmds := l.inbox
	l.inbox, l.spare = l.spare[:0], nil
	l.signaled = false
	l.mu.Unlock()
	for i, c := range cmds {
		p := c.p
		switch c.op {
		case cmdAdd:
			p.index = -1
			p.due = now.Add(p.firstDelay())
			l.queue.push(p)
		case cmdRemove:
			p.removed = true
			l.queue.remove(p)
			if p.running {
				l.drop(p)
			}
		case cmdProbeNow:
			switch {
			case p.removed:
			case p.running:
				p.again = true
			case p.index >= 0:
				l.queue.reschedule(p, now)
			}
		case cmdResult:
			if ctxDone(l.ctx) {
				break // stopped mid-probe: not the backend's fault, not counted
			}
			l.finish(p, c.err, now)
		case cmdSync:
			close(c.done)
		}
		cmds[i] = loopCmd{}
	}
	l.mu.Lock()
	l.spare = cmds[:0]
	l.mu.Unlock()
}

func ctxDone(ctx context.Context) bool { return ctx.Err() != nil }

// fire starts every probe that is due and fails those whose time ran out.
func (l *checkLoop) fire(now time.Time) {
	for {
		p := l.queue.pop(now)
		if p == nil {
			return
		}
		if p.running { // a wire probe past its timeout
			err := p.wire.timedOut()
			l.release(p)
			l.finish(p, err, now)
			continue
		}
		l.start(p, now)
	}
}

// start begins one probe of p.
func (l *checkLoop) start(p *prober, now time.Time) {
	p.running = true
	if p.wire == nil {
		ctx, cancel := context.WithTimeout(l.ctx, p.cfg.Timeout)
		p.cancel = cancel
		l.aside.Add(1)
		if p.aside != nil {
			p.aside.Add(1)
		}
		go l.probeAside(ctx, p)
		return
	}
	if done, err := p.wire.begin(); done {
		p.wire.end()
		l.finish(p, err, now)
		return
	}
	fd := p.wire.fd
	// Edge-triggered: one registration serves the connect, the request
	// and the reply, and closing the socket removes it. A probe that only
	// waits for the reply (the connect and the request done at once, as
	// on loopback) asks for no EPOLLOUT, which a writable socket would
	// report at once for nothing.
	events := uint32(unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET)
	if p.wire.stage != stageReading {
		events |= unix.EPOLLOUT
	}
	ev := unix.EpollEvent{Events: events, Fd: int32(fd)}
	if err := rawEpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		perr := p.wire.fail("epoll_ctl", err)
		p.wire.end()
		l.finish(p, perr, now)
		return
	}
	for fd >= len(l.owners) {
		l.owners = append(l.owners, nil)
	}
	l.owners[fd] = p
	p.due = now.Add(p.cfg.Timeout)
	l.queue.push(p)
}

// step advances p's wire probe after its socket became ready.
func (l *checkLoop) step(p *prober, now time.Time) {
	done, err := p.wire.advance()
	if !done {
		return
	}
	l.queue.remove(p)
	l.release(p)
	l.finish(p, err, now)
}

// release closes p's wire probe socket.
func (l *checkLoop) release(p *prober) {
	if fd := p.wire.fd; fd >= 0 && fd < len(l.owners) {
		l.owners[fd] = nil
	}
	p.wire.end()
}

// drop abandons p's probe in flight, whose result no longer matters.
func (l *checkLoop) drop(p *prober) {
	p.running = false
	if p.wire != nil {
		l.release(p)
	}
	if p.cancel != nil {
		p.cancel()
		p.cancel = nil
	}
}

// finish applies a probe's result and queues p's next probe.
func (l *checkLoop) finish(p *prober, err error, now time.Time) {
	p.running = false
	if p.cancel != nil {
		p.cancel()
		p.cancel = nil
	}
	if p.removed {
		return
	}
	p.observe(err)
	// A starting replica's retries (it joins within milliseconds) and the
	// random first wait (at least a tenth of the interval) are kept exact.
	exact := p.joining || p.spread
	d := p.nextDelay()
	switch {
	case p.again:
		p.again = false
		p.due = now
	case exact:
		p.due = now.Add(d)
	default:
		p.due = l.onGrid(now, now.Add(d), p.cfg.Interval)
	}
	l.queue.push(p)
}

// onGrid moves t to the nearest point of a grid of a twentieth of the
// interval (at most 100 ms), so that one wake-up serves the probes of
// several backends instead of one each: on a small service a wake-up cost
// more than the probe it made. The grid starts at gridOrigin for every
// loop, so the loops of services with the same interval wake together.
// Rounding to the nearest point, not up, keeps the mean wait the
// interval: the schedule does not drift.
func (l *checkLoop) onGrid(now, t time.Time, interval time.Duration) time.Time {
	tick := min(interval/20, maxGridTick)
	if tick < time.Millisecond {
		return t
	}
	if g := gridOrigin.Add(t.Sub(gridOrigin).Round(tick)); g.After(now) {
		return g
	}
	return t
}

// gridOrigin is the process's start, as a monotonic time: the origin of
// onGrid's grid. It is set once and only read.
var gridOrigin = time.Now()

// maxGridTick bounds how far onGrid moves a probe.
const maxGridTick = 100 * time.Millisecond

// probeAside runs a checker that is not a wire probe, on its own goroutine.
func (l *checkLoop) probeAside(ctx context.Context, p *prober) {
	defer l.aside.Done()
	if p.aside != nil {
		defer p.aside.Done()
	}
	err := checkSpec(ctx, p.checker, p.b.Spec())
	l.post(loopCmd{op: cmdResult, p: p, err: err})
}

// close ends the loop: sockets of probes in flight are closed, goroutine
// probes (whose context has ended with run's) are awaited.
func (l *checkLoop) close() {
	for _, p := range l.queue.heap {
		if p.running && p.wire != nil {
			l.release(p)
		}
	}
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.aside.Wait()
	l.ep.Close()
	unix.Close(l.evfd)
	unix.Close(l.tfd)
}
