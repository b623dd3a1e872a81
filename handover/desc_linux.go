package handover

import (
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// describe asks the kernel what fd is. Anything but a listening TCP or a
// bound UDP socket is refused: handing a connected socket or a file to
// the data path would be a bug somewhere, best found here.
func describe(fd int) (Desc, error) {
	var d Desc
	domain, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return d, fmt.Errorf("not a socket: %w", err)
	}
	if domain != unix.AF_INET && domain != unix.AF_INET6 {
		return d, fmt.Errorf("socket of address family %d, not IPv4 or IPv6", domain)
	}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return d, err
	}
	proto, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PROTOCOL)
	if err != nil {
		return d, err
	}
	switch {
	case typ == unix.SOCK_STREAM && proto == unix.IPPROTO_TCP:
		acc, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
		if err != nil {
			return d, err
		}
		if acc != 1 {
			return d, fmt.Errorf("a TCP socket that is not listening")
		}
		d.Network = "tcp"
	case typ == unix.SOCK_DGRAM && proto == unix.IPPROTO_UDP:
		d.Network = "udp"
	case proto == unix.IPPROTO_MPTCP:
		return d, fmt.Errorf("a Multipath TCP socket (tierlb listens with plain TCP)")
	default:
		return d, fmt.Errorf("socket of type %d, protocol %d: not TCP or UDP", typ, proto)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return d, fmt.Errorf("getsockname: %w", err)
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		d.Addr = netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		d.Addr = netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port))
		v6only, err := unix.GetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY)
		if err != nil {
			return d, err
		}
		d.V6Only = v6only == 1
	default:
		return d, fmt.Errorf("getsockname: unexpected address %T", sa)
	}
	if d.Addr.Port() == 0 {
		return d, fmt.Errorf("%s socket not bound", d.Network)
	}
	rp, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT)
	if err != nil {
		return d, err
	}
	d.ReusePort = rp == 1
	return d, nil
}
