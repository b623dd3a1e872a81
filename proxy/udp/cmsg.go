//go:build linux

package udp

import (
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A listener bound to a wildcard address learns from each datagram's
// IP_PKTINFO (IPV6_PKTINFO on an IPv6 socket, v4-mapped for IPv4 clients
// of a dual-stack one) which of the host's addresses the client sent to,
// and answers from that address. Without it the kernel picks the source of
// a reply by route, and a client that reached tierlb on another of its
// addresses (a container on several networks, a published port) drops an
// answer that comes from an address it never asked.

// ctrlWords sizes a message's control buffer: one pktinfo message fits
// (32 bytes with IPV6_PKTINFO), with room for one the kernel adds.
// uint64 words keep the headers aligned.
const ctrlWords = 8

type ctrlBuf [ctrlWords]uint64

func (c *ctrlBuf) bytes() []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(c)), len(c)*8)
}

// parseLocal returns the destination address of the pktinfo message in
// ctrl, the control data of one received datagram. ok is false when there
// is none or the data is malformed.
func parseLocal(ctrl []byte) (local netip.Addr, ok bool) {
	for len(ctrl) >= unix.SizeofCmsghdr {
		var h unix.Cmsghdr
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&h)), unix.SizeofCmsghdr), ctrl)
		if h.Len < unix.SizeofCmsghdr || h.Len > uint64(len(ctrl)) {
			return local, false
		}
		data := ctrl[cmsgAlign(unix.SizeofCmsghdr):h.Len]
		switch {
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			var p unix.Inet4Pktinfo
			copy(unsafe.Slice((*byte)(unsafe.Pointer(&p)), unix.SizeofInet4Pktinfo), data)
			return netip.AddrFrom4(p.Addr), true
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			var p unix.Inet6Pktinfo
			copy(unsafe.Slice((*byte)(unsafe.Pointer(&p)), unix.SizeofInet6Pktinfo), data)
			return netip.AddrFrom16(p.Addr), true
		}
		next := cmsgAlign(int(h.Len))
		if next >= len(ctrl) {
			break
		}
		ctrl = ctrl[next:]
	}
	return local, false
}

// putLocal writes into c the pktinfo message that makes a reply leave from
// local and returns its length. v6 says the listener is an IPv6 socket.
// The interface is left to the routing table.
func putLocal(c *ctrlBuf, local netip.Addr, v6 bool) int {
	b := c.bytes()
	h := (*unix.Cmsghdr)(unsafe.Pointer(c))
	data := b[cmsgAlign(unix.SizeofCmsghdr):]
	if v6 {
		h.Level, h.Type = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO
		h.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
		p := (*unix.Inet6Pktinfo)(unsafe.Pointer(&data[0]))
		*p = unix.Inet6Pktinfo{Addr: local.As16()}
		return unix.CmsgSpace(unix.SizeofInet6Pktinfo)
	}
	h.Level, h.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
	p := (*unix.Inet4Pktinfo)(unsafe.Pointer(&data[0]))
	*p = unix.Inet4Pktinfo{Spec_dst: local.Unmap().As4()}
	return unix.CmsgSpace(unix.SizeofInet4Pktinfo)
}

// cmsgAlign rounds n up to the control message alignment (a long).
func cmsgAlign(n int) int {
	const a = int(unsafe.Sizeof(uintptr(0)))
	return (n + a - 1) &^ (a - 1)
}
