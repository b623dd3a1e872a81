package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// headerReadSize is the buffer the PROXY header is read through. A v1
// header is at most 107 bytes and must come in one read; v2 is read on in
// as many reads as it takes. Bytes the client sent after the header land in
// the same buffer and are forwarded to the backend before splicing starts.
const headerReadSize = 512

// proxyHeader is what an accepted PROXY header says.
type proxyHeader struct {
	// src and dst are the client's real address and the address it
	// connected to; invalid for a LOCAL (health check) header, which means
	// "use the socket's own addresses".
	src, dst netip.AddrPort
	// rest is what the client sent after the header.
	rest []byte
}

// readProxyHeader reads the PROXY header a trusted peer must send, within
// timeout. A slow, missing or malformed header is an error for this
// connection alone.
func readProxyHeader(c *net.TCPConn, timeout time.Duration) (proxyHeader, error) {
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return proxyHeader{}, fmt.Errorf("read PROXY header: %w", err)
	}
	h, err := parseProxyHeader(c)
	if derr := c.SetReadDeadline(time.Time{}); err == nil && derr != nil {
		err = fmt.Errorf("read PROXY header: %w", derr)
	}
	return h, err
}

// parseProxyHeader reads a v1 or v2 header from r and returns it with the
// bytes that were read past it.
func parseProxyHeader(r io.Reader) (proxyHeader, error) {
	br := bufio.NewReaderSize(r, headerReadSize)
	h, err := proxyproto.Read(br)
	if err != nil {
		return proxyHeader{}, fmt.Errorf("read PROXY header: %w", err)
	}
	var ph proxyHeader
	if h.Command.IsProxy() {
		src, sok := h.SourceAddr.(*net.TCPAddr)
		dst, dok := h.DestinationAddr.(*net.TCPAddr)
		if !sok || !dok {
			return proxyHeader{}, fmt.Errorf("read PROXY header: %w: not TCP", proxyproto.ErrUnsupportedAddressFamilyAndProtocol)
		}
		ph.src, ph.dst = addrPort(src), addrPort(dst)
	}
	if n := br.Buffered(); n > 0 {
		rest, _ := br.Peek(n)
		ph.rest = rest
	}
	return ph, nil
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
