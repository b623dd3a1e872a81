package udp

import (
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The loop's syscalls. Those on the datagram path are raw and
// non-blocking: they never wait, so they skip the scheduler hooks of
// unix.Syscall, and they read and write socket addresses and message
// headers in memory the loop owns, so that moving a datagram allocates
// nothing. Only epoll_wait, the one call that blocks, goes through
// unix.EpollWait.

// errnoErr returns e as an error without allocating for the common values.
func errnoErr(e unix.Errno) error {
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

// sysRecvmmsg receives up to len(hs) datagrams without blocking.
func sysRecvmmsg(fd int, hs []unix.Mmsghdr) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(hs))),
		uintptr(len(hs)), unix.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return 0, errnoErr(e)
	}
	return int(r), nil
}

// sysSendmmsg sends up to len(hs) datagrams without blocking and returns
// how many went. A failure after the first datagram is reported as a
// short count; the caller retries from there to learn the error.
func sysSendmmsg(fd int, hs []unix.Mmsghdr) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(hs))),
		uintptr(len(hs)), unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, 0, 0)
	if e != 0 {
		return 0, errnoErr(e)
	}
	return int(r), nil
}

// sysSocket opens a non-blocking, close-on-exec datagram socket.
func sysSocket(family int) (int, error) {
	r, _, e := unix.RawSyscall(unix.SYS_SOCKET, uintptr(family), unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if e != 0 {
		return -1, errnoErr(e)
	}
	return int(r), nil
}

// sysConnect connects a datagram socket: it only fixes the peer, so it
// returns at once.
func sysConnect(fd int, sa *sockaddr) error {
	_, _, e := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa.raw)), uintptr(sa.len))
	return errnoErr(e)
}

func sysClose(fd int) error {
	_, _, e := unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
	return errnoErr(e)
}

func sysEpollCtl(epfd, op, fd int, ev *unix.EpollEvent) error {
	_, _, e := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd),
		uintptr(unsafe.Pointer(ev)), 0, 0)
	return errnoErr(e)
}

// sockaddr is a socket address in the kernel's layout, big enough for
// either family.
type sockaddr struct {
	raw unix.RawSockaddrInet6
	len uint32
}

// set stores ap; an IPv4 address goes in the family's own layout unless
// v6 asks for a v4-mapped one (a peer of a dual-stack socket).
func (sa *sockaddr) set(ap netip.AddrPort, v6 bool) {
	a := ap.Addr()
	if a.Is4() && !v6 {
		p := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa.raw))
		*p = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.As4()}
		putPort(&p.Port, ap.Port())
		sa.len = unix.SizeofSockaddrInet4
		return
	}
	sa.raw = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: a.As16()}
	putPort(&sa.raw.Port, ap.Port())
	sa.len = unix.SizeofSockaddrInet6
}

// addrPort returns the address as the kernel gave it (a v4-mapped peer of
// a dual-stack socket stays mapped, so it keys its session as it arrived).
// ok is false for a family other than IPv4 or IPv6 or a short length.
func (sa *sockaddr) addrPort() (ap netip.AddrPort, ok bool) {
	switch sa.raw.Family {
	case unix.AF_INET:
		if sa.len < unix.SizeofSockaddrInet4 {
			return ap, false
		}
		p := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa.raw))
		return netip.AddrPortFrom(netip.AddrFrom4(p.Addr), getPort(&p.Port)), true
	case unix.AF_INET6:
		if sa.len < unix.SizeofSockaddrInet6 {
			return ap, false
		}
		return netip.AddrPortFrom(netip.AddrFrom16(sa.raw.Addr), getPort(&sa.raw.Port)), true
	}
	return ap, false
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
