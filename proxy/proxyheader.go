package proxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// maxHeaderSize bounds a PROXY header: v1 is at most 107 bytes; v2 may
// carry TLVs up to 64 KiB, of which real senders use a few hundred bytes.
// The epoll engine reads the header into one of its 32 KiB buffers, and
// the goroutine path takes the same bound.
const maxHeaderSize = bufSize

// headerReadSize is the buffer the goroutine path starts reading a header
// into; it grows for a longer v2 header.
const headerReadSize = 512

// v1MaxLength is the longest v1 header line, CRLF included.
const v1MaxLength = 107

// proxyHeader is what an accepted PROXY header says.
type proxyHeader struct {
	// src and dst are the client's real address and the address it
	// connected to; invalid for a LOCAL (health check) header, which means
	// "use the socket's own addresses".
	src, dst netip.AddrPort
	// rest is what the client sent after the header.
	rest []byte
}

// Both engines take a PROXY header in two steps: headerLength finds its
// end from the framing alone, as bytes arrive, and go-proxyproto parses
// the whole header at once. A header split over several packets is read
// as the specification recommends (go-proxyproto on its own refuses a v1
// header that does not come in one read); the wait is bounded by
// the proxy-header timeout (Timeouts.ProxyHeader).

// headerLength returns how long the PROXY header at the start of b is, 0
// while b is too short to tell, or -1 when b cannot start a header whose
// end can be found (the parser then says what is wrong): v1 ends at its
// first LF, v2 is 16 bytes and the length they give.
func headerLength(b []byte) int {
	if n := min(len(b), len(proxyproto.SIGV2)); bytes.Equal(b[:n], proxyproto.SIGV2[:n]) {
		if len(b) < 16 {
			return 0
		}
		return 16 + int(binary.BigEndian.Uint16(b[14:16]))
	}
	if n := min(len(b), len(proxyproto.SIGV1)); bytes.Equal(b[:n], proxyproto.SIGV1[:n]) {
		if i := bytes.IndexByte(b[:min(len(b), v1MaxLength)], '\n'); i >= 0 {
			return i + 1
		}
		if len(b) < v1MaxLength {
			return 0
		}
	}
	return -1
}

// readProxyHeader reads the PROXY header a trusted peer must send, within
// timeout. A slow, missing or malformed header is an error for this
// connection alone.
func readProxyHeader(c *net.TCPConn, timeout time.Duration) (proxyHeader, error) {
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return proxyHeader{}, fmt.Errorf("read PROXY header: %w", err)
	}
	h, err := readHeaderFrom(c)
	if derr := c.SetReadDeadline(time.Time{}); err == nil && derr != nil {
		err = fmt.Errorf("read PROXY header: %w", derr)
	}
	return h, err
}

// readHeaderFrom reads a v1 or v2 header from r, in as many reads as it
// takes, and returns it with the bytes that were read past it.
func readHeaderFrom(r io.Reader) (proxyHeader, error) {
	buf := make([]byte, headerReadSize)
	n := 0
	for {
		hlen := headerLength(buf[:n])
		switch {
		case hlen < 0:
			return proxyHeader{}, badHeader(buf[:n])
		case hlen > maxHeaderSize:
			return proxyHeader{}, errHeaderTooLong(hlen)
		case hlen > 0 && hlen <= n:
			return parseHeader(buf[:hlen], buf[hlen:n])
		case hlen > len(buf):
			buf = append(buf[:n], make([]byte, hlen-n)...)
		}
		m, err := r.Read(buf[n:])
		n += m
		if err != nil && m == 0 {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return proxyHeader{}, fmt.Errorf("read PROXY header: %w", err)
		}
	}
}

// parseHeader parses the header hdr, which headerLength framed; rest is
// what the client sent after it.
func parseHeader(hdr, rest []byte) (proxyHeader, error) {
	h, err := proxyproto.Read(bufio.NewReaderSize(bytes.NewReader(hdr), max(len(hdr), 16)))
	if err != nil {
		return proxyHeader{}, fmt.Errorf("read PROXY header: %w", err)
	}
	ph := proxyHeader{rest: rest}
	if h.Command.IsProxy() {
		src, sok := h.SourceAddr.(*net.TCPAddr)
		dst, dok := h.DestinationAddr.(*net.TCPAddr)
		if !sok || !dok {
			return proxyHeader{}, fmt.Errorf("read PROXY header: %w: not TCP", proxyproto.ErrUnsupportedAddressFamilyAndProtocol)
		}
		ph.src, ph.dst = addrPort(src), addrPort(dst)
	}
	return ph, nil
}

// badHeader says what is wrong with b, which headerLength could not frame.
// The parser names the fault; should it accept what the framing refused,
// the bytes are still no header.
func badHeader(b []byte) error {
	if _, err := parseHeader(b, nil); err != nil {
		return err
	}
	return fmt.Errorf("read PROXY header: %q does not frame as a v1 or v2 header", b[:min(len(b), 16)])
}

func errHeaderTooLong(n int) error {
	return fmt.Errorf("read PROXY header: %d bytes, longer than the %d allowed", n, maxHeaderSize)
}

// formatProxyHeader makes the header sent to a backend: the client's real
// address and the address it connected to.
func formatProxyHeader(version byte, src, dst netip.AddrPort) ([]byte, error) {
	h := proxyproto.HeaderProxyFromAddrs(version, net.TCPAddrFromAddrPort(src), net.TCPAddrFromAddrPort(dst))
	b, err := h.Format()
	if err != nil {
		return nil, fmt.Errorf("format PROXY v%d header for %s: %w", version, src, err)
	}
	return b, nil
}
