package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
	"golang.org/x/sys/unix"
)

// headerBackend parses the PROXY header tierlb sends, reports it as one
// line "vN src dst", then echoes the rest of the stream.
func headerBackend(c net.Conn) {
	br := bufio.NewReader(c)
	h, err := proxyproto.Read(br)
	if err != nil {
		fmt.Fprintf(c, "error %v\n", err)
		return
	}
	fmt.Fprintf(c, "v%d %s %s\n", h.Version, h.SourceAddr, h.DestinationAddr)
	io.Copy(c, br)
}

func readLine(t *testing.T, c net.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	one := make([]byte, 1)
	for {
		if _, err := c.Read(one); err != nil {
			t.Fatalf("read line: %v (so far %q)", err, b.String())
		}
		if one[0] == '\n' {
			return b.String()
		}
		b.WriteByte(one[0])
	}
}

// TestProxyProtocolSent: the backend learns the client's address in the
// version configured, and the stream follows the header intact.
func TestProxyProtocolSent(t *testing.T) {
	be := startBackend(t, headerBackend)
	for _, v := range []string{"v1", "v2"} {
		t.Run(v, func(t *testing.T) {
			s := startService(t, Config{ProxyProtocol: v, ZeroCopy: true}, staticSet(t, be.addr()))
			c := dial(t, s)
			want := fmt.Sprintf("%s %s %s", v, c.LocalAddr(), s.Addr())
			if got := readLine(t, c); got != want {
				t.Fatalf("backend saw %q, want %q", got, want)
			}
			roundTrip(t, c, "after the header")
		})
	}
}

// TestProxyProtocolAccepted: from a trusted network the client's header
// names the real client, whose address is passed on to the backend, and
// bytes sent in the same packet as the header are not lost.
func TestProxyProtocolAccepted(t *testing.T) {
	be := startBackend(t, headerBackend)
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	real := &net.TCPAddr{IP: net.ParseIP("203.0.113.7"), Port: 4444}
	dst := &net.TCPAddr{IP: net.ParseIP("198.51.100.1"), Port: 443}
	for _, in := range []byte{1, 2} {
		for _, out := range []string{"v1", "v2"} {
			t.Run(fmt.Sprintf("in v%d out %s", in, out), func(t *testing.T) {
				s := startService(t, Config{AcceptProxyProtocol: trusted, ProxyProtocol: out}, staticSet(t, be.addr()))
				c := dial(t, s)
				hdr, err := proxyproto.HeaderProxyFromAddrs(in, real, dst).Format()
				if err != nil {
					t.Fatal(err)
				}
				// Header and payload in one write: the payload is read
				// past the header and must still reach the backend first.
				if _, err := c.Write(append(hdr, "early bytes|"...)); err != nil {
					t.Fatal(err)
				}
				want := fmt.Sprintf("%s %s %s", out, real, dst)
				if got := readLine(t, c); got != want {
					t.Fatalf("backend saw %q, want %q", got, want)
				}
				buf := make([]byte, len("early bytes|"))
				if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "early bytes|" {
					t.Fatalf("early bytes: %q, %v", buf, err)
				}
				roundTrip(t, c, "later bytes")
			})
		}
	}
}

// TestProxyProtocolInPieces: a header that arrives a few bytes at a time
// (v1, and v2 with a TLV) is put together before it is read, and the bytes
// sent after it still reach the backend first.
func TestProxyProtocolInPieces(t *testing.T) {
	be := startBackend(t, headerBackend)
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	real := &net.TCPAddr{IP: net.ParseIP("203.0.113.7"), Port: 4444}
	dst := &net.TCPAddr{IP: net.ParseIP("198.51.100.1"), Port: 443}
	v2 := proxyproto.HeaderProxyFromAddrs(2, real, dst)
	if err := v2.SetTLVs([]proxyproto.TLV{{Type: proxyproto.PP2_TYPE_AUTHORITY, Value: []byte("app.example")}}); err != nil {
		t.Fatal(err)
	}
	for _, h := range []*proxyproto.Header{proxyproto.HeaderProxyFromAddrs(1, real, dst), v2} {
		t.Run(fmt.Sprintf("v%d", h.Version), func(t *testing.T) {
			hdr, err := h.Format()
			if err != nil {
				t.Fatal(err)
			}
			s := startService(t, Config{AcceptProxyProtocol: trusted, ProxyProtocol: "v1"}, staticSet(t, be.addr()))
			c := dial(t, s)
			c.SetNoDelay(true)
			msg := append(hdr, "after|"...)
			for i := 0; i < len(msg); i += 3 {
				if _, err := c.Write(msg[i:min(i+3, len(msg))]); err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Millisecond)
			}
			if got, want := readLine(t, c), fmt.Sprintf("v1 %s %s", real, dst); got != want {
				t.Fatalf("backend saw %q, want %q", got, want)
			}
			buf := make([]byte, len("after|"))
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "after|" {
				t.Fatalf("bytes after the header: %q, %v", buf, err)
			}
		})
	}
}

// TestProxyProtocolRejected: garbage, a missing header and a slow header
// close that connection alone; a good connection opened meanwhile is
// served while the bad one still waits for its header.
func TestProxyProtocolRejected(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	v2sig := string(proxyproto.SIGV2)
	tests := []struct {
		name    string
		send    string
		waiting bool // the bad connection waits out the header timeout
	}{
		{"garbage", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"bad v1 address", "PROXY TCP4 300.1.1.1 10.0.0.1 1 2\r\n", false},
		{"v1 too long", "PROXY TCP4 " + strings.Repeat("1", 120) + "\r\n", false},
		{"slow v2", v2sig[:8], true},
		{"silent", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := startBackend(t, echo)
			s := startService(t, Config{AcceptProxyProtocol: trusted,
				Timeouts: Timeouts{ProxyHeader: 2 * time.Second}}, staticSet(t, be.addr()))
			bad := dial(t, s)
			if tt.send != "" {
				if _, err := io.WriteString(bad, tt.send); err != nil {
					t.Fatal(err)
				}
			}
			// A good client meanwhile is served.
			good := dial(t, s)
			hdr, _ := proxyproto.HeaderProxyFromAddrs(1, good.LocalAddr(), good.RemoteAddr()).Format()
			if _, err := good.Write(hdr); err != nil {
				t.Fatal(err)
			}
			roundTrip(t, good, "still served")
			if tt.waiting && s.Active() != 2 {
				t.Errorf("open connections once the good one was served: %d, want 2 (the bad one still waiting)", s.Active())
			}
			err := readEnd(bad, 5*time.Second)
			if !errors.Is(err, unix.ECONNRESET) && !errors.Is(err, io.EOF) {
				t.Fatalf("bad header connection ended with %v, want closed", err)
			}
			if be.accepted() != 1 {
				t.Errorf("backend saw %d connections, want 1 (the good one)", be.accepted())
			}
		})
	}
}

// TestProxyProtocolAllow: behind a trusted proxy, allow applies to the
// client named by the header.
func TestProxyProtocolAllow(t *testing.T) {
	be := startBackend(t, echo)
	s, m := metricsService(t, Config{
		AcceptProxyProtocol: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Allow:               []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
	}, staticSet(t, be.addr()))
	send := func(src string) net.Conn {
		c := dial(t, s)
		hdr, _ := proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.ParseIP(src), Port: 1}, c.RemoteAddr()).Format()
		c.Write(hdr)
		return c
	}
	roundTrip(t, send("10.1.2.3"), "allowed")
	if err := readEnd(send("192.0.2.1"), 5*time.Second); !errors.Is(err, unix.ECONNRESET) {
		t.Fatalf("client outside allow ended with %v, want a reset", err)
	}
	if got := rejected(m, RejectNotAllowed); got != 1 {
		t.Errorf("rejected not_allowed = %v, want 1", got)
	}
}
