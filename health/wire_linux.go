//go:build linux

package health

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// wireProbe is one tcp or http check as a non-blocking state machine over
// a raw socket, so that a loop can run thousands of them without a
// goroutine, a timer or an allocation each: begin opens the socket and
// starts the connect, advance moves on whenever the socket is ready, end
// closes it. The same probe runs on a monitor's check loop (epoll) and
// under Check's context (Go's poller).
//
// A probe closes its socket with SO_LINGER 0, which sends a reset instead
// of a FIN: the side that closes first keeps a TIME_WAIT for 60 s, and at
// 10,000 backends checked every 2 s that would hold 300,000 of tierlb's
// local ports. HAProxy closes its checks the same way.
type wireProbe struct {
	sa     *rawSockaddr // the backend, laid out once
	family int
	addr   string       // for messages
	req    []byte       // http: the request; nil for a tcp check
	http   *HTTPChecker // http: what to expect

	linger unix.Linger // {1, 0}: close with a reset; here so that setsockopt's pointer does not allocate
	fd     int
	stage  uint8
	sent   int
	head   [statusLineLen]byte // the start of the reply
	n      int
}

// The stages of a probe.
const (
	stageIdle uint8 = iota
	stageConnecting
	stageSending
	stageReading
)

// statusLineLen covers "HTTP/1.1 200 ": all an http check reads.
const statusLineLen = 13

// newWireProbe prepares a probe of ip, an IP literal and a port, for the
// backend named addr (the same, or a host name and port it resolved to);
// it returns false when ip is not an IP literal.
func newWireProbe(addr, ip string, h *HTTPChecker) (*wireProbe, bool) {
	ap, err := netip.ParseAddrPort(ip)
	if err != nil {
		return nil, false
	}
	w := &wireProbe{addr: addr, fd: -1, linger: unix.Linger{Onoff: 1, Linger: 0}}
	w.family = unix.AF_INET
	var zone uint32
	if !ap.Addr().Unmap().Is4() {
		w.family = unix.AF_INET6
		if z := ap.Addr().Zone(); z != "" {
			ifi, err := net.InterfaceByName(z)
			if err != nil {
				return nil, false
			}
			zone = uint32(ifi.Index)
		}
	}
	w.sa = newRawSockaddr(ap, zone)
	if h != nil {
		w.http = h
		host := h.Host
		if host == "" {
			host = addr
		}
		w.req = []byte("GET " + h.Path + " HTTP/1.1\r\nHost: " + host +
			"\r\nUser-Agent: tierlb-health\r\nConnection: close\r\n\r\n")
	}
	return w, true
}

// begin opens the socket and starts the connect. A probe that ended at
// once (a local error, or a refusal the kernel knew at once) returns done.
func (w *wireProbe) begin() (done bool, err error) {
	fd, err := rawSocket(w.family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
	if err != nil {
		return true, w.fail("socket", err)
	}
	w.fd, w.stage, w.sent, w.n = fd, stageConnecting, 0, 0
	if err := rawSetsockopt(fd, unix.SOL_SOCKET, unix.SO_LINGER, unsafe.Pointer(&w.linger), unix.SizeofLinger); err != nil {
		return true, w.fail("setsockopt", err)
	}
	// With delayed ACKs from the start, the handshake's last ACK waits for
	// data: an http check's request carries it, and a tcp check resets
	// the connection before it is ever sent, so the backend's kernel
	// answers the check alone and its application never accepts it.
	off := int32(0)
	if err := rawSetsockopt(fd, unix.IPPROTO_TCP, unix.TCP_QUICKACK, unsafe.Pointer(&off), 4); err != nil {
		return true, w.fail("setsockopt", err)
	}
	if err := rawConnect(fd, w.sa); err != nil && err != unix.EINPROGRESS {
		return true, w.fail("connect", err)
	}
	return w.advance()
}

// advance makes what progress the socket allows. It returns done with the
// verdict, or not done when the socket must be ready again first.
func (w *wireProbe) advance() (done bool, err error) {
	for {
		switch w.stage {
		case stageConnecting:
			// A second connect reports how the first went, as HAProxy does
			// it: EISCONN once established. On loopback and most bridges
			// the handshake is over by now and no wait is needed.
			switch err := rawConnect(w.fd, w.sa); err {
			case unix.EISCONN, nil:
			case unix.EALREADY, unix.EINPROGRESS:
				return false, nil
			default:
				return true, w.fail("connect", err)
			}
			if w.req == nil {
				return true, nil
			}
			w.stage = stageSending
		case stageSending:
			n, err := sockWrite(w.fd, w.req[w.sent:])
			if err == unix.EAGAIN {
				return false, nil
			}
			if err != nil {
				return true, w.fail("write", err)
			}
			if w.sent += n; w.sent == len(w.req) {
				// The reply cannot be there yet: the backend has to run
				// first. Wait for it rather than read in vain.
				w.stage = stageReading
				return false, nil
			}
		case stageReading:
			n, err := sockRead(w.fd, w.head[w.n:])
			switch {
			case err == unix.EAGAIN:
				return false, nil
			case err != nil:
				return true, w.fail("read", err)
			case n == 0:
				return true, w.httpErr(fmt.Errorf("read tcp %s: unexpected EOF after %q", w.addr, w.head[:w.n]))
			}
			w.n += n
			if w.n == len(w.head) || bytes.IndexByte(w.head[:w.n], '\n') >= 0 {
				return true, w.status()
			}
		default:
			return true, errors.New("health probe advanced while idle")
		}
	}
}

// status judges the status line read so far.
func (w *wireProbe) status() error {
	line := w.head[:w.n]
	// "HTTP/1.x NNN" then a space, CR or LF.
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' ||
		(len(line) > 12 && line[12] != ' ' && line[12] != '\r' && line[12] != '\n') {
		return w.httpErr(fmt.Errorf("malformed HTTP response %q", line))
	}
	code := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return w.httpErr(fmt.Errorf("malformed HTTP status code %q", line[9:12]))
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 {
		return w.httpErr(fmt.Errorf("malformed HTTP status code %q", line[9:12]))
	}
	if !w.http.Status.Contains(code) {
		return fmt.Errorf("GET %s: status %d, want %s", w.url(), code, w.http.Status)
	}
	return nil
}

// end closes the socket, with a reset (SO_LINGER 0).
func (w *wireProbe) end() {
	if w.fd >= 0 {
		rawClose(w.fd)
		w.fd = -1
	}
	w.stage = stageIdle
}

// timedOut is the error of a probe whose time ran out.
func (w *wireProbe) timedOut() error {
	op := "dial"
	if w.stage == stageSending || w.stage == stageReading {
		op = "read"
	}
	return w.wrap(&net.OpError{Op: op, Net: "tcp", Addr: netAddr(w.addr), Err: os.ErrDeadlineExceeded})
}

// fail is the error of a failed syscall, worded as package net words it
// ("dial tcp ADDR: connect: connection refused").
func (w *wireProbe) fail(call string, errno error) error {
	op := "dial"
	if call == "write" || call == "read" {
		op = call
	}
	return w.wrap(&net.OpError{Op: op, Net: "tcp", Addr: netAddr(w.addr), Err: os.NewSyscallError(call, errno)})
}

func (w *wireProbe) wrap(err error) error {
	if w.req == nil {
		return err
	}
	return w.httpErr(err)
}

// httpErr words an http probe's failure as net/http's client did:
// `Get "http://ADDR/PATH": ...`.
func (w *wireProbe) httpErr(err error) error {
	return &url.Error{Op: "Get", URL: w.url(), Err: err}
}

func (w *wireProbe) url() string { return "http://" + w.addr + w.http.Path }

// netAddr is an address for net.OpError's text.
type netAddr string

func (a netAddr) Network() string { return "tcp" }
func (a netAddr) String() string  { return string(a) }

// run drives the probe to its end under ctx on Go's poller: Check's way,
// for callers outside a monitor.
func (w *wireProbe) run(ctx context.Context) error {
	if done, err := w.begin(); done {
		w.end()
		return err
	}
	// os.NewFile takes the descriptor over: closing f closes it.
	f := os.NewFile(uintptr(w.fd), "health probe "+w.addr)
	w.fd = -1
	defer func() {
		f.Close()
		w.stage = stageIdle
	}()
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok {
		f.SetDeadline(dl)
	}
	// A cancel without a deadline (shutdown) must also end the wait.
	stop := context.AfterFunc(ctx, func() { f.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	for {
		var done bool
		var perr error
		stage0 := w.stage
		step := func(fd uintptr) bool {
			w.fd = int(fd)
			done, perr = w.advance()
			w.fd = -1
			return done || w.stage != stage0
		}
		if w.stage == stageReading {
			err = rc.Read(step)
		} else {
			err = rc.Write(step)
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
					return w.wrap(&net.OpError{Op: "dial", Net: "tcp", Addr: netAddr(w.addr), Err: ctx.Err()})
				}
				return w.timedOut()
			}
			return w.wrap(err)
		}
		if done {
			return perr
		}
	}
}

var errNotIP = errors.New("not an IP address")

// resolve turns a host:port into an IP literal:port with the resolver.
func resolve(ctx context.Context, addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return "", &net.OpError{Op: "dial", Net: "tcp", Err: err}
	}
	if len(ips) == 0 {
		return "", fmt.Errorf("dial tcp %s: %w", addr, errNotIP)
	}
	return net.JoinHostPort(ips[0].Unmap().String(), port), nil
}

// checkWire runs one probe of addr (resolving a host name first).
func checkWire(ctx context.Context, addr string, h *HTTPChecker) error {
	w, ok := newWireProbe(addr, addr, h)
	if !ok {
		ip, err := resolve(ctx, addr)
		if err != nil {
			return err
		}
		if w, ok = newWireProbe(addr, ip, h); !ok {
			return fmt.Errorf("dial tcp %s: %w", addr, errNotIP)
		}
	}
	return w.run(ctx)
}
