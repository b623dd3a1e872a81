package proxy

import (
	"errors"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// How a loop sleeps when it has nothing to do.
//
// waitThread, the default, is the classic design: the loop sleeps in a
// blocking epoll_wait, so the kernel wakes its thread directly. Go's
// scheduler sees a thread in a system call; unless a P is idle, sysmon
// takes its P away after 20µs and every wakeup pays for a P handoff.
// ReserveProc keeps a P idle so that this does not happen. The goroutine
// is not locked to its thread: sysmon preempts a loop that stays busy for
// 10 ms, and a locked goroutine pays two futex handoffs to get its thread
// back (measured: 2.5 times the futex calls, and p99 10.8 instead of 9.9 ms
// with a new connection per request).
//
// waitNetpoll nests the loop's epoll instance in Go's own netpoller: the
// loop polls its epoll set without blocking, and when it is empty parks
// its goroutine until the epoll fd becomes readable (or the next deadline
// passes). No thread blocks outside the scheduler's knowledge, but a
// wakeup goes through the netpoller and the run queue: measured with a
// runtime trace under 64 keep-alive connections, a woken loop waited up to
// 2 ms for a P, and wrk's p99 was 5.1–5.6 ms against 2.6 ms for
// waitThread (HAProxy: 2.5 ms), for about the same CPU per request.
type waitMode uint8

const (
	waitThread waitMode = iota
	waitNetpoll
)

// waitEnv picks the wait mode, for measurements: "thread" (the default)
// or "netpoll".
const waitEnv = "TIERLB_EPOLL_WAIT"

func waitFromEnv() waitMode {
	if os.Getenv(waitEnv) == "netpoll" {
		return waitNetpoll
	}
	return waitThread
}

// initPark registers the epoll fd with Go's netpoller.
func (l *loop) initPark() error {
	if err := unix.SetNonblock(l.epfd, true); err != nil {
		return err
	}
	l.pf = os.NewFile(uintptr(l.epfd), "epoll")
	rc, err := l.pf.SyscallConn()
	if err != nil {
		return err
	}
	l.prc = rc
	l.parkFn = l.pollOrPark
	return nil
}

// pollOrPark is the callback the loop parks with. RawConn.Read clears the
// netpoller's readiness before calling it, so it polls the epoll set once
// more itself: an event that came after the loop's last poll is either
// found here or wakes the park, never lost.
func (l *loop) pollOrPark(uintptr) bool {
	l.polled, l.pollErr = epollPoll(l.epfd, l.events[:])
	return l.polled > 0 || l.pollErr != nil
}

// epollPoll returns the ready events without blocking.
func epollPoll(epfd int, events []unix.EpollEvent) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])),
		uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, errnoErr(e)
	}
	return int(r), nil
}

// runNetpoll is run in waitNetpoll mode. It parks only after a poll found
// nothing: a level-triggered listener that still has connections would
// not wake Go's (edge-triggered) registration again.
func (l *loop) runNetpoll() {
	defer l.closeFDs()
	set := int64(-1) // the deadline set on the epoll file; -1: none
	n, err := epollPoll(l.epfd, l.events[:])
	for !l.stopping {
		l.now = l.clock()
		if err != nil && err != unix.EINTR {
			l.s.log.Error("epoll_wait failed: loop stopped", "err", err)
			l.abortAll("error: epoll_wait: " + err.Error())
			return
		}
		for i := range n {
			l.dispatch(&l.events[i])
		}
		l.runAgain()
		l.expire()
		if n > 0 || err != nil || len(l.again) > 0 || l.stopping {
			n, err = epollPoll(l.epfd, l.events[:])
			continue
		}
		if next := l.nextDeadline(); next != set {
			var t time.Time
			if next >= 0 {
				t = l.base.Add(time.Duration(next))
			}
			if err := l.pf.SetReadDeadline(t); err != nil {
				l.s.log.Error("set loop deadline", "err", err)
			}
			set = next
		}
		l.polled, l.pollErr = 0, nil // Read may fail before calling parkFn
		rerr := l.prc.Read(l.parkFn)
		n, err = l.polled, l.pollErr
		switch {
		case errors.Is(rerr, os.ErrDeadlineExceeded):
			set = -2 // passed: set again (or cleared) before the next park
		case rerr != nil:
			l.s.log.Error("park loop", "err", rerr)
			l.abortAll("error: park loop: " + rerr.Error())
			return
		}
	}
}
