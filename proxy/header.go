//go:build linux

package proxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"

	proxyproto "github.com/pires/go-proxyproto"
	"golang.org/x/sys/unix"
)

// maxHeaderSize bounds an accepted PROXY header: v1 is at most 107 bytes;
// v2 may carry TLVs up to 64 KiB, of which real senders use a few hundred
// bytes. The header is collected in one pending buffer.
const maxHeaderSize = bufSize

// v1MaxLength is the longest v1 header line, CRLF included.
const v1MaxLength = 107

// proxyHeader is what an accepted PROXY header says. src and dst are the
// client's real address and the address it connected to; invalid for a
// LOCAL (health check) header, which means "use the socket's own
// addresses".
type proxyHeader struct {
	src, dst netip.AddrPort
}

// A PROXY header is taken in two steps: headerLength finds its end from
// the framing alone, as bytes arrive, and go-proxyproto parses the whole
// header at once. A header split over several packets is read as the
// specification recommends (go-proxyproto on its own refuses a v1 header
// that does not come in one read); the wait is bounded by the proxy-header
// timeout (Timeouts.ProxyHeader).
//
// The header's bytes collect in the connection's client→backend pending
// buffer until the header is whole. What the client sent after the header
// stays in the buffer and is the first thing the backend gets, after
// tierlb's own header if it sends one.

// startHeader waits for a trusted client's PROXY header, for at most
// the proxy-header timeout (Timeouts.ProxyHeader).
func (l *loop) startHeader(c *conn) {
	c.state = stateHeader
	l.schedule(c, l.el.Now+int64(c.cfg.Timeouts.proxyHeader()))
}

// readPending appends what the client has sent to c.up.pend, for a
// PROXY header or a ClientHello read whole before the backend dial. more
// is false when nothing was read (the edge is drained); err is the read's
// error, or io.ErrUnexpectedEOF if the client closed. A read shorter than
// the room drained the socket, as in recvIn, so the direction is no
// longer readable and nobody reads it again before the next edge; unless
// a FIN or an error is known, which a read must still reach.
func readPending(c *conn) (more bool, err error) {
	d := &c.up
	for {
		room := len(d.pend) - int(d.end)
		n, err := sysRead(int(c.cfd), d.pend[d.end:])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			d.readable = false
			return false, nil
		case err != nil:
			return false, os.NewSyscallError("read", err)
		case n == 0:
			return false, io.ErrUnexpectedEOF
		}
		d.end += int32(n)
		if n < room && !d.rdhup && !d.errSeen {
			d.readable = false
		}
		return true, nil
	}
}

// readHeader reads what the client sent so far and, once the header is
// whole, checks it and starts the backend dial.
func (l *loop) readHeader(c *conn) {
	d := &c.up
	if d.pend == nil {
		d.pend = l.getBuf()
	}
	for {
		if !d.readable {
			return // drained: the next edge brings more
		}
		if more, err := readPending(c); err != nil {
			l.headerFailed(c, err)
			return
		} else if !more {
			return
		}
		hlen := headerLength(d.pend[:d.end])
		switch {
		case hlen > maxHeaderSize:
			l.headerDone(c, proxyHeader{}, errHeaderTooLong(hlen))
		case hlen < 0:
			l.headerDone(c, proxyHeader{}, badHeader(d.pend[:d.end]))
		case hlen > 0 && hlen <= int(d.end):
			h, err := parseHeader(d.pend[:hlen])
			d.off = int32(hlen)
			l.headerDone(c, h, err)
		default:
			continue // more to come; the buffer holds any header
		}
		return
	}
}

// headerDone starts the dial for a client whose header was read, or ends
// the connection on err.
func (l *loop) headerDone(c *conn, h proxyHeader, err error) {
	if err != nil {
		c.rst = true
		c.setEnd("error: " + err.Error())
		l.finish(c)
		return
	}
	if h.src.IsValid() {
		c.peer, c.local = h.src, h.dst
	}
	// What followed the header waits for the backend. The socket may hold
	// more: reading stopped at the header's end, so it reads on once open.
	d := &c.up
	if d.off == d.end {
		l.putBuf(d.pend)
		d.pend, d.off, d.end = nil, 0, 0
	}
	d.readable = true
	l.unschedule(c)
	if !allowed(c.cfg.Allow, c.peer.Addr()) {
		l.reject(c, RejectNotAllowed, "error: client not allowed")
		return
	}
	l.proceed(c, d.pend != nil)
}

// headerFailed ends a connection whose header did not come whole: the
// client closed, reset or was too slow.
func (l *loop) headerFailed(c *conn, err error) {
	c.rst = true
	c.setEnd("error: read PROXY header: " + err.Error())
	l.finish(c)
}

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

// parseHeader parses the header hdr, which headerLength framed.
func parseHeader(hdr []byte) (proxyHeader, error) {
	h, err := proxyproto.Read(bufio.NewReaderSize(bytes.NewReader(hdr), max(len(hdr), 16)))
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
		ph.src, ph.dst = unmapped(src.AddrPort()), unmapped(dst.AddrPort())
	}
	return ph, nil
}

// badHeader says what is wrong with b, which headerLength could not frame.
// The parser names the fault; should it accept what the framing refused,
// the bytes are still no header.
func badHeader(b []byte) error {
	if _, err := parseHeader(b); err != nil {
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

// unmapped unmaps an IPv4-mapped address, so that 10.0.0.0/8 matches a
// client a v2 header names in its IPv6 form.
func unmapped(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
