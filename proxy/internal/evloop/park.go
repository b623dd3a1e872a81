//go:build linux

package evloop

import (
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// parking is how a loop that has been idle for a while sleeps: its
// goroutine parks in Go's netpoller on the loop's epoll descriptor (an
// epoll set is itself pollable) instead of blocking in epoll_wait. A
// goroutine blocked in a system call keeps its P until sysmon takes it
// 10 ms later, and every such take sends sysmon back to polling every
// 20µs for a millisecond and more: some 50 wakeups of its thread each
// time an idle loop, woken by a rare event, goes back to sleep. A parked
// goroutine gives its P back at once and costs sysmon nothing.
//
// The descriptor is in the netpoller only while the loop is parked: left
// there, every event of the loop would also wake the thread that waits in
// the netpoller. So each park registers a duplicate and closes it after,
// some eight system calls and an os.File, which only a loop idle for
// idleWindows pays, or for one window while another loop is awake.
type parking struct {
	epfd   int
	events []unix.EpollEvent
	n      int
	err    error
	poll   func(uintptr) bool // p.collect, bound once
}

func newParking(epfd int, events []unix.EpollEvent) *parking {
	p := &parking{epfd: epfd, events: events}
	p.poll = p.collect
	return p
}

// collect takes the ready events without waiting; false when there are
// none, and the goroutine parks until the epoll set turns readable.
func (p *parking) collect(uintptr) bool {
	p.n, p.err = rawEpollWait(p.epfd, p.events, 0)
	return p.n != 0 || (p.err != nil && p.err != unix.EINTR)
}

// errNotParked: the netpoller did not take the epoll descriptor, and the
// loop waits in epoll_wait instead.
var errNotParked = errors.New("not parked")

// wait parks until events are ready or msec milliseconds have passed (-1:
// no limit), and returns them as epoll_wait would, or errNotParked.
func (p *parking) wait(msec int) (int, error) {
	fd, err := unix.FcntlInt(uintptr(p.epfd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return 0, errNotParked
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return 0, errNotParked
	}
	f := os.NewFile(uintptr(fd), "epoll")
	defer f.Close()
	var deadline time.Time
	if msec >= 0 {
		deadline = time.Now().Add(time.Duration(msec) * time.Millisecond)
	}
	// A file outside the netpoller takes no deadline.
	if f.SetReadDeadline(deadline) != nil {
		return 0, errNotParked
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, errNotParked
	}
	p.n, p.err = 0, nil
	if err := rc.Read(p.poll); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, nil
		}
		return 0, errNotParked
	}
	return p.n, p.err
}
