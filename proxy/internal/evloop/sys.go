//go:build linux

package evloop

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The syscalls every loop makes, raw: on non-blocking sockets they never
// wait, so they skip the scheduler hooks of unix.Syscall (a slow one on a
// busy machine does not make sysmon hand the loop's P to another thread),
// and they allocate nothing. Only epoll_wait, the one call that blocks,
// goes through unix.EpollWait.

// Errno returns e as an error without allocating for the common values.
func Errno(e unix.Errno) error {
	switch e {
	case 0:
		return nil
	case unix.EAGAIN:
		return unix.EAGAIN
	case unix.EINTR:
		return unix.EINTR
	case unix.ECONNREFUSED:
		return unix.ECONNREFUSED
	}
	return e
}

// Socket opens a non-blocking, close-on-exec socket of family and typ
// (SOCK_STREAM, SOCK_DGRAM).
func Socket(family, typ int) (int, error) {
	r, _, e := unix.RawSyscall(unix.SYS_SOCKET, uintptr(family), uintptr(typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC), 0)
	if e != 0 {
		return -1, Errno(e)
	}
	return int(r), nil
}

// SetsockoptInt sets an int socket option.
func SetsockoptInt(fd, level, opt, value int) error {
	v := int32(value)
	_, _, e := unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&v)), 4, 0)
	return Errno(e)
}

// Close closes fd.
func Close(fd int) error {
	_, _, e := unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
	return Errno(e)
}

// EpollCtl is epoll_ctl(2).
func EpollCtl(epfd, op, fd int, ev *unix.EpollEvent) error {
	_, _, e := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd),
		uintptr(unsafe.Pointer(ev)), 0, 0)
	return Errno(e)
}

// GetPort reads a port stored in network byte order.
func GetPort(p *uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(p))
	return uint16(b[0])<<8 | uint16(b[1])
}

// PutPort stores a port in network byte order.
func PutPort(p *uint16, port uint16) {
	b := (*[2]byte)(unsafe.Pointer(p))
	b[0], b[1] = byte(port>>8), byte(port)
}

// rawEpollWait is epoll_wait (epoll_pwait with no signal mask, as every
// architecture has it) without the scheduler hooks: the goroutine keeps
// its P while it waits. Only for a wait bounded well under sysmon's 10 ms
// preemption (Loop.wait); a signal (a preemption request, the GC's)
// ends it early with EINTR.
func rawEpollWait(epfd int, events []unix.EpollEvent, msec int) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(unsafe.SliceData(events))),
		uintptr(len(events)), uintptr(msec), 0, 0)
	if e != 0 {
		return 0, Errno(e)
	}
	return int(r), nil
}
