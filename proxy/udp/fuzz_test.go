//go:build linux

package udp

import (
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// FuzzParseLocal feeds arbitrary control data to the pktinfo parser, which
// reads what the kernel wrote: it must never panic, and what putLocal
// writes must parse back to the same address.
func FuzzParseLocal(f *testing.F) {
	var c ctrlBuf
	f.Add(c.bytes()[:putLocal(&c, netip.MustParseAddr("127.0.0.2"), false)], []byte{10, 0, 0, 1}, false)
	f.Add(c.bytes()[:putLocal(&c, netip.MustParseAddr("::ffff:10.1.2.3"), true)], netip.MustParseAddr("fd00::1").AsSlice(), true)
	f.Add([]byte{}, []byte{}, false)
	f.Add(make([]byte, 17), []byte{1, 2, 3, 4}, true)
	f.Fuzz(func(t *testing.T, ctrl, addr []byte, v6 bool) {
		parseLocal(ctrl)
		local, ok := netip.AddrFromSlice(addr)
		if !ok || (!v6 && !local.Unmap().Is4()) {
			return
		}
		var c ctrlBuf
		n := putLocal(&c, local, v6)
		got, ok := parseLocal(c.bytes()[:n])
		want := local
		if v6 {
			want = netip.AddrFrom16(local.As16())
		} else {
			want = local.Unmap()
		}
		// putLocal writes the source (ipi_spec_dst) of an IPv4 reply; the
		// parser reads a received header's destination (ipi_addr).
		if v6 && (!ok || got != want) {
			t.Fatalf("put %v, parsed %v %v", want, got, ok)
		}
		if !v6 {
			p := (*unix.Inet4Pktinfo)(unsafe.Pointer(&c.bytes()[cmsgAlign(unix.SizeofCmsghdr)]))
			if netip.AddrFrom4(p.Spec_dst) != want || !ok {
				t.Fatalf("put %v, wrote %v", want, p.Spec_dst)
			}
		}
	})
}

// FuzzSockaddr round-trips addresses through the kernel layout, and reads
// arbitrary bytes as one without panicking.
func FuzzSockaddr(f *testing.F) {
	f.Add([]byte{127, 0, 0, 1}, uint16(53), false, []byte{2, 0, 0, 53, 127, 0, 0, 1}, uint32(16))
	f.Add(netip.MustParseAddr("::1").AsSlice(), uint16(65535), true, []byte{10, 0}, uint32(28))
	f.Fuzz(func(t *testing.T, addr []byte, port uint16, v6 bool, raw []byte, rawLen uint32) {
		var sa sockaddr
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&sa.raw)), unsafe.Sizeof(sa.raw)), raw)
		sa.len = rawLen
		sa.addrPort()

		a, ok := netip.AddrFromSlice(addr)
		if !ok {
			return
		}
		ap := netip.AddrPortFrom(a, port)
		sa.set(ap, v6)
		got, ok := sa.addrPort()
		want := ap
		if v6 {
			want = netip.AddrPortFrom(netip.AddrFrom16(a.As16()), port)
		}
		if !ok || got != want {
			t.Fatalf("set %v (v6 %v), read %v %v", ap, v6, got, ok)
		}
	})
}
