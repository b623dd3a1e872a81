package udp

import (
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/tierlb/tierlb/proxy/internal/evloop"
)

// The loop's syscalls. Those on the datagram path are raw and
// non-blocking: they never wait, so they skip the scheduler hooks of
// unix.Syscall, and they read and write socket addresses and message
// headers in memory the loop owns, so that moving a datagram allocates
// nothing. Only epoll_wait, the one call that blocks, goes through
// unix.EpollWait.

// sysRecvmmsg receives up to len(hs) datagrams without blocking.
func sysRecvmmsg(fd int, hs []unix.Mmsghdr) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(hs))),
		uintptr(len(hs)), unix.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return 0, evloop.Errno(e)
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
		return 0, evloop.Errno(e)
	}
	return int(r), nil
}

// sysConnect connects a datagram socket: it only fixes the peer, so it
// returns at once.
func sysConnect(fd int, sa *sockaddr) error {
	_, _, e := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa.raw)), uintptr(sa.len))
	return evloop.Errno(e)
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
		evloop.PutPort(&p.Port, ap.Port())
		sa.len = unix.SizeofSockaddrInet4
		return
	}
	sa.raw = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: a.As16()}
	evloop.PutPort(&sa.raw.Port, ap.Port())
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
		return netip.AddrPortFrom(netip.AddrFrom4(p.Addr), evloop.GetPort(&p.Port)), true
	case unix.AF_INET6:
		if sa.len < unix.SizeofSockaddrInet6 {
			return ap, false
		}
		return netip.AddrPortFrom(netip.AddrFrom16(sa.raw.Addr), evloop.GetPort(&sa.raw.Port)), true
	}
	return ap, false
}
