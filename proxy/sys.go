//go:build linux

package proxy

import (
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The loops' syscalls. The socket calls on its hot path are raw and
// non-blocking: they never wait, so they skip the scheduler hooks of
// unix.Syscall, and they read and write socket addresses in buffers owned by
// the loop, so that accepting, connecting and moving bytes allocate nothing.
// Only epoll_wait, the one call that blocks, goes through unix.EpollWait.

// errnoErr returns e as an error without allocating for the common values.
func errnoErr(e unix.Errno) error {
	switch e {
	case 0:
		return nil
	case unix.EAGAIN:
		return unix.EAGAIN
	case unix.EINTR:
		return unix.EINTR
	}
	return e
}

// sysAccept accepts one connection, non-blocking and close-on-exec, and
// leaves the peer's address in rsa.
func sysAccept(lfd int, rsa *unix.RawSockaddrAny, rlen *uint32) (int, error) {
	*rlen = unix.SizeofSockaddrAny
	r, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(lfd), uintptr(unsafe.Pointer(rsa)),
		uintptr(unsafe.Pointer(rlen)), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	if e != 0 {
		return -1, errnoErr(e)
	}
	return int(r), nil
}

// sysConnect starts a non-blocking connect to ap, building the address in
// rsa. EINPROGRESS is the usual answer.
func sysConnect(fd int, ap netip.AddrPort, rsa *unix.RawSockaddrAny) error {
	var n uintptr
	a := ap.Addr().Unmap()
	if a.Is4() {
		p := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		*p = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.As4()}
		putPort(&p.Port, ap.Port())
		n = unix.SizeofSockaddrInet4
	} else {
		p := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		*p = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: a.As16()}
		putPort(&p.Port, ap.Port())
		n = unix.SizeofSockaddrInet6
	}
	_, _, e := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(rsa)), n)
	return errnoErr(e)
}

// sysRead reads into b.
func sysRead(fd int, b []byte) (int, error) {
	r, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
	if e != 0 {
		return 0, errnoErr(e)
	}
	return int(r), nil
}

// sysSend writes b with MSG_NOSIGNAL: a reset peer yields EPIPE, not a
// SIGPIPE for the runtime to swallow.
func sysSend(fd int, b []byte) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))),
		uintptr(len(b)), unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return 0, errnoErr(e)
	}
	return int(r), nil
}

// sysSplice moves up to n bytes between a socket and a pipe, non-blocking.
func sysSplice(in, out, n int) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_SPLICE, uintptr(in), 0, uintptr(out), 0, uintptr(n), spliceFlags)
	if e != 0 {
		return 0, errnoErr(e)
	}
	return int(r), nil
}

// sockaddrToAddrPort converts an accepted peer's address, unmapping IPv4
// clients of a dual-stack listener so that 10.0.0.0/8 matches them.
func sockaddrToAddrPort(rsa *unix.RawSockaddrAny) netip.AddrPort {
	switch rsa.Addr.Family {
	case unix.AF_INET:
		p := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		return netip.AddrPortFrom(netip.AddrFrom4(p.Addr), getPort(&p.Port))
	case unix.AF_INET6:
		p := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		return netip.AddrPortFrom(netip.AddrFrom16(p.Addr).Unmap(), getPort(&p.Port))
	}
	return netip.AddrPort{}
}

// Ports are stored in network byte order.
func getPort(p *uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(p))
	return uint16(b[0])<<8 | uint16(b[1])
}

func putPort(p *uint16, port uint16) {
	b := (*[2]byte)(unsafe.Pointer(p))
	b[0], b[1] = byte(port>>8), byte(port)
}

// localAddrPort returns the address a client connected to, for the PROXY
// header sent to the backend.
func localAddrPort(fd int) (netip.AddrPort, error) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return netip.AddrPort{}, err
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)), nil
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port)), nil
	}
	return netip.AddrPort{}, unix.EAFNOSUPPORT
}

// closeFD closes a socket, with an RST instead of a FIN when rst is set.
func closeFD(fd int, rst bool) {
	if fd < 0 {
		return
	}
	if rst {
		l := unix.Linger{Onoff: 1, Linger: 0}
		_, _, _ = unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_LINGER,
			uintptr(unsafe.Pointer(&l)), unsafe.Sizeof(l), 0)
	}
	_ = sysClose(fd)
}

// socketError returns a socket's pending error (SO_ERROR).
func socketError(fd int) error {
	v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return err
	}
	return errnoErr(unix.Errno(v))
}

// The calls below are short and never block on non-blocking sockets
// (close too: no socket of the engine lingers with a timeout). Made raw,
// they do not enter the scheduler's syscall state, so a slow one on a
// busy machine does not make sysmon hand the loop's P to another thread.

func sysSocket(family int) (int, error) {
	r, _, e := unix.RawSyscall(unix.SYS_SOCKET, uintptr(family), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if e != 0 {
		return -1, errnoErr(e)
	}
	return int(r), nil
}

func sysSetsockoptInt(fd, level, opt, value int) error {
	v := int32(value)
	_, _, e := unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&v)), 4, 0)
	return errnoErr(e)
}

func sysClose(fd int) error {
	_, _, e := unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
	return errnoErr(e)
}

func sysShutdown(fd, how int) error {
	_, _, e := unix.RawSyscall(unix.SYS_SHUTDOWN, uintptr(fd), uintptr(how), 0)
	return errnoErr(e)
}

func sysEpollCtl(epfd, op, fd int, ev *unix.EpollEvent) error {
	_, _, e := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd),
		uintptr(unsafe.Pointer(ev)), 0, 0)
	return errnoErr(e)
}
