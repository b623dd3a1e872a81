//go:build linux

package health

import (
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The check loop makes its probes' system calls raw, without telling the
// runtime it is in a system call: every one of them is on a non-blocking
// descriptor and returns at once. Through the runtime's entry, the first
// call after the runtime's monitor thread fell asleep (every Go thread
// idle) wakes it, and it then polls every 20µs for a millisecond or more:
// at each wake-up of the loop, a second thread woke dozens of times for
// nothing. The one call that can wait, the wait itself, is in Go's poller.

func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

func rawSocket(family, typ int) (int, error) {
	fd, _, e := unix.RawSyscall(unix.SYS_SOCKET, uintptr(family), uintptr(typ), 0)
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}

func rawSetsockopt(fd, level, opt int, val unsafe.Pointer, size uintptr) error {
	_, _, e := unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(val), size, 0)
	return errnoErr(e)
}

func rawConnect(fd int, sa *rawSockaddr) error {
	_, _, e := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa.buf)), uintptr(sa.len))
	return errnoErr(e)
}

func rawClose(fd int) error {
	_, _, e := unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
	return errnoErr(e)
}

func rawEpollWait(epfd int, events []unix.EpollEvent) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func rawEpollCtl(epfd, op, fd int, ev *unix.EpollEvent) error {
	_, _, e := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0)
	return errnoErr(e)
}

func rawTimerfdSettime(fd, flags int, spec *unix.ItimerSpec) error {
	_, _, e := unix.RawSyscall6(unix.SYS_TIMERFD_SETTIME, uintptr(fd), uintptr(flags), uintptr(unsafe.Pointer(spec)), 0, 0, 0)
	return errnoErr(e)
}

// rawSockaddr is a socket address in the kernel's layout, made once per
// backend.
type rawSockaddr struct {
	buf [unix.SizeofSockaddrInet6]byte
	len uint32
}

// newRawSockaddr lays out ap (zone: the interface index of a link-local
// IPv6 address, or 0).
func newRawSockaddr(ap netip.AddrPort, zone uint32) *rawSockaddr {
	sa := &rawSockaddr{}
	port := [2]byte{byte(ap.Port() >> 8), byte(ap.Port())}
	if a := ap.Addr().Unmap(); a.Is4() {
		r := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa.buf))
		r.Family = unix.AF_INET
		r.Port = *(*uint16)(unsafe.Pointer(&port))
		r.Addr = a.As4()
		sa.len = unix.SizeofSockaddrInet4
		return sa
	}
	r := (*unix.RawSockaddrInet6)(unsafe.Pointer(&sa.buf))
	r.Family = unix.AF_INET6
	r.Port = *(*uint16)(unsafe.Pointer(&port))
	r.Addr = ap.Addr().As16()
	r.Scope_id = zone
	sa.len = unix.SizeofSockaddrInet6
	return sa
}
