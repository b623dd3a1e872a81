package proxy

import (
	"net"
	"net/netip"
	"testing"

	proxyproto "github.com/pires/go-proxyproto"
)

// FuzzParseProxyHeader: for any input, the framing (headerLength) asks for
// more bytes at every prefix shorter than the header it finally finds; a
// header it frames either fails to parse or yields addresses that survive
// a round trip through both versions; and input it cannot frame is
// reported as an error.
func FuzzParseProxyHeader(f *testing.F) {
	src := &net.TCPAddr{IP: net.ParseIP("203.0.113.7"), Port: 4444}
	dst := &net.TCPAddr{IP: net.ParseIP("198.51.100.1"), Port: 443}
	src6 := &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 1}
	dst6 := &net.TCPAddr{IP: net.ParseIP("2001:db8::2"), Port: 2}
	for _, v := range []byte{1, 2} {
		for _, pair := range [][2]*net.TCPAddr{{src, dst}, {src6, dst6}} {
			h, _ := proxyproto.HeaderProxyFromAddrs(v, pair[0], pair[1]).Format()
			f.Add(h)
			f.Add(append(h, "GET / HTTP/1.1\r\n\r\n"...))
		}
	}
	f.Add([]byte("PROXY UNKNOWN\r\nhello"))
	f.Add([]byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"))
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Add(append([]byte(nil), proxyproto.SIGV2...))
	f.Add(append(append([]byte(nil), proxyproto.SIGV2...), 0x20, 0x00, 0x00, 0x00, 'x'))

	f.Fuzz(func(t *testing.T, in []byte) {
		hlen := headerLength(in)
		if hlen < 0 {
			if badHeader(in) == nil {
				t.Fatalf("badHeader(%q) = nil for input the framing refused", in)
			}
			return
		}
		if hlen == 0 || hlen > len(in) || hlen > maxHeaderSize {
			return // the loop waits for more bytes, or refuses the length
		}
		for k := range hlen {
			if n := headerLength(in[:k]); n != 0 && n != hlen {
				t.Fatalf("headerLength of the first %d bytes = %d, want 0 or %d (%q)", k, n, hlen, in)
			}
		}
		h, err := parseHeader(in[:hlen])
		if err != nil {
			return
		}
		if h.src.IsValid() != h.dst.IsValid() {
			t.Fatalf("one address without the other: %v %v", h.src, h.dst)
		}
		if !h.src.IsValid() {
			return
		}
		for _, v := range []byte{1, 2} {
			out, err := formatProxyHeader(v, h.src, h.dst)
			if err != nil {
				t.Fatalf("format v%d of %v %v: %v", v, h.src, h.dst, err)
			}
			if n := headerLength(out); n != len(out) {
				t.Fatalf("headerLength of our own v%d header %q = %d, want %d", v, out, n, len(out))
			}
			back, err := parseHeader(out)
			if err != nil {
				t.Fatalf("parse our own v%d header %q: %v", v, out, err)
			}
			if !sameAddr(back.src, h.src) || !sameAddr(back.dst, h.dst) {
				t.Fatalf("v%d round trip: %v %v -> %v %v", v, h.src, h.dst, back.src, back.dst)
			}
		}
	})
}

// sameAddr compares addresses the way a header carries them: an IPv4
// address may come back as its IPv4-mapped IPv6 form in a mixed header.
func sameAddr(a, b netip.AddrPort) bool {
	return a.Port() == b.Port() && a.Addr().Unmap() == b.Addr().Unmap()
}
