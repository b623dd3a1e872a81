//go:build linux

package proxy

import (
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/tierlb/tierlb/proxy/internal/evloop"
)

// The loops' syscalls. The socket calls on its hot path are raw and
// non-blocking: they never wait, so they skip the scheduler hooks of
// unix.Syscall, and they read and write socket addresses in buffers owned by
// the loop, so that accepting, connecting and moving bytes allocate nothing.
// Only epoll_wait, the one call that blocks, goes through unix.EpollWait.

// sysAccept accepts one connection, non-blocking and close-on-exec, and
// leaves the peer's address in rsa.
func sysAccept(lfd int, rsa *unix.RawSockaddrAny, rlen *uint32) (int, error) {
	*rlen = unix.SizeofSockaddrAny
	r, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(lfd), uintptr(unsafe.Pointer(rsa)),
		uintptr(unsafe.Pointer(rlen)), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	if e != 0 {
		return -1, evloop.Errno(e)
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
		evloop.PutPort(&p.Port, ap.Port())
		n = unix.SizeofSockaddrInet4
	} else {
		p := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		*p = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: a.As16()}
		evloop.PutPort(&p.Port, ap.Port())
		n = unix.SizeofSockaddrInet6
	}
	_, _, e := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(rsa)), n)
	return evloop.Errno(e)
}

// sysRead reads into b.
func sysRead(fd int, b []byte) (int, error) {
	r, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
	if e != 0 {
		return 0, evloop.Errno(e)
	}
	return int(r), nil
}

// sysSend writes b with MSG_NOSIGNAL (a reset peer yields EPIPE, not a
// SIGPIPE for the runtime to swallow) and the extra flags given.
func sysSend(fd int, b []byte, flags int) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))),
		uintptr(len(b)), uintptr(unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT|flags), 0, 0)
	if e != 0 {
		return 0, evloop.Errno(e)
	}
	return int(r), nil
}

// sysSplice moves up to n bytes between a socket and a pipe, non-blocking.
func sysSplice(in, out, n int) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_SPLICE, uintptr(in), 0, uintptr(out), 0, uintptr(n), spliceFlags)
	if e != 0 {
		return 0, evloop.Errno(e)
	}
	return int(r), nil
}

// sockaddrToAddrPort converts an accepted peer's address, unmapping IPv4
// clients of a dual-stack listener so that 10.0.0.0/8 matches them.
func sockaddrToAddrPort(rsa *unix.RawSockaddrAny) netip.AddrPort {
	switch rsa.Addr.Family {
	case unix.AF_INET:
		p := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		return netip.AddrPortFrom(netip.AddrFrom4(p.Addr), evloop.GetPort(&p.Port))
	case unix.AF_INET6:
		p := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		return netip.AddrPortFrom(netip.AddrFrom16(p.Addr).Unmap(), evloop.GetPort(&p.Port))
	}
	return netip.AddrPort{}
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
		lingerZero(fd)
	}
	_ = evloop.Close(fd)
}

// lingerZero makes the socket's close send a reset (SO_LINGER 0).
func lingerZero(fd int) {
	l := unix.Linger{Onoff: 1, Linger: 0}
	_, _, _ = unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_LINGER,
		uintptr(unsafe.Pointer(&l)), unsafe.Sizeof(l), 0)
}

// socketError returns a socket's pending error (SO_ERROR).
func socketError(fd int) error {
	v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return err
	}
	return evloop.Errno(unix.Errno(v))
}

// sysShutdown is shutdown(2), raw: it never blocks.
func sysShutdown(fd, how int) error {
	_, _, e := unix.RawSyscall(unix.SYS_SHUTDOWN, uintptr(fd), uintptr(how), 0)
	return evloop.Errno(e)
}
