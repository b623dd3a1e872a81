package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// maxReply bounds how much of a reply a send-expect check reads while
// looking for its match.
const maxReply = 64 << 10

// errNoMatch is the cause of every reply that did not satisfy expect.
var errNoMatch = errors.New("reply did not match")

// SendExpectChecker connects, writes Send, then reads until the reply
// matches Expect, the peer closes, the probe times out or maxReply bytes
// arrived without a match. With an empty Expect it passes once Send is
// written.
//
// Over UDP (Network "udp") it sends Send as one datagram and passes when a
// datagram that matches Expect comes back before the probe times out; an
// ICMP port unreachable fails it at once.
type SendExpectChecker struct {
	Send   []byte
	Expect Matcher
	// Network is "tcp" (or "") or "udp".
	Network string
}

// NewSendExpectChecker parses health.send and health.expect.
func NewSendExpectChecker(send, expect string) (*SendExpectChecker, error) {
	b, err := ParseEscapes(send)
	if err != nil {
		return nil, fmt.Errorf("health.send: %w", err)
	}
	m, err := ParseExpect(expect)
	if err != nil {
		return nil, fmt.Errorf("health.expect: %w", err)
	}
	return &SendExpectChecker{Send: b, Expect: m}, nil
}

// Check runs the exchange against addr.
func (s *SendExpectChecker) Check(ctx context.Context, addr string) error {
	if s.Network == NetworkUDP {
		return s.checkDatagram(ctx, addr)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	// A cancel without a deadline (shutdown) must also end a blocked read.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if len(s.Send) > 0 {
		if _, err := conn.Write(s.Send); err != nil {
			return fmt.Errorf("send to %s: %w", addr, err)
		}
	}
	if s.Expect.Empty() {
		return nil
	}
	buf := make([]byte, 0, 512)
	for {
		if len(buf) == cap(buf) {
			if cap(buf) >= maxReply {
				return fmt.Errorf("expect %q from %s: %w in the first %d bytes", s.Expect, addr, errNoMatch, len(buf))
			}
			grown := make([]byte, len(buf), min(2*cap(buf), maxReply))
			copy(grown, buf)
			buf = grown
		}
		n, err := conn.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if s.Expect.Match(buf) {
			return nil
		}
		switch {
		case errors.Is(err, io.EOF):
			return fmt.Errorf("expect %q from %s: %w before the peer closed, got %s", s.Expect, addr, errNoMatch, excerpt(buf))
		case err != nil:
			return fmt.Errorf("expect %q from %s: %w, got %s", s.Expect, addr, err, excerpt(buf))
		}
	}
}

// excerpt quotes the start of a reply for a failure reason.
func excerpt(b []byte) string {
	const n = 64
	if len(b) == 0 {
		return "nothing"
	}
	if len(b) > n {
		return fmt.Sprintf("%q... (%d bytes)", b[:n], len(b))
	}
	return fmt.Sprintf("%q", b)
}

// checkDatagram is Check over UDP. Datagrams that do not match (a late
// answer to an earlier probe) are skipped until the deadline.
func (s *SendExpectChecker) checkDatagram(ctx context.Context, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if _, err := conn.Write(s.Send); err != nil {
		return fmt.Errorf("send to udp %s: %w", addr, err)
	}
	buf := make([]byte, maxReply)
	var last []byte
	for {
		n, err := conn.Read(buf)
		if err != nil {
			if last == nil {
				return fmt.Errorf("expect %q from udp %s: %w", s.Expect, addr, err)
			}
			return fmt.Errorf("expect %q from udp %s: %w, got %s", s.Expect, addr, errNoMatch, excerpt(last))
		}
		if s.Expect.Match(buf[:n]) {
			return nil
		}
		last = append(last[:0], buf[:n]...)
	}
}
