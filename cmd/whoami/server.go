package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxBytes caps GET /bytes/N so one request cannot stream forever.
const maxBytes = 1 << 30

// payload is written for /bytes/N. It is big enough that a 1 MiB response is
// one write(2) (the kernel takes what fits and the poller waits for the rest),
// so the backend spends as little CPU per byte as possible in the benchmark.
var payload = func() []byte {
	b := make([]byte, 1<<20)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return b
}()

// Server is a lean HTTP/1.1 server: one goroutine per connection, keep-alive
// and pipelining, no per-request allocations on the hot routes. net/http costs
// about twice the CPU per request, which would make the backend rather than
// the proxy the bottleneck of the benchmark.
type Server struct {
	// Name is reported by GET / and GET /name.
	Name string
	// Chain is the URL that GET /chain calls, a new connection each time
	// (the next tier, through a load balancer); the answer is Name, " -> ",
	// and the next tier's answer. Empty: GET /chain answers Name alone,
	// the end of a chain.
	Chain string
	// Unhealthy makes GET /healthz answer 503 (for health-check tests).
	Unhealthy bool
	// LameDuck is how long Serve goes on accepting and answering after ctx
	// ends, with "Connection: close" on every response and 503 on /healthz,
	// before it closes the listener and idle connections (0: at once).
	LameDuck time.Duration
	// DrainTimeout is how long Serve waits for busy connections after the
	// lame-duck period before closing them (default 10s).
	DrainTimeout time.Duration
	Logger       *slog.Logger

	tracker tracker
	lame    lameDuck
	chain   *chainClient
}

// Serve accepts on ln until ctx ends and LameDuck has passed, then stops
// accepting, closes idle keep-alive connections, waits for busy ones up to
// DrainTimeout and closes the rest. It returns once every connection
// goroutine has finished.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.tracker.init()
	if s.Chain != "" {
		s.chain = &chainClient{url: s.Chain}
	}
	stop := s.lame.arm(ctx, s.LameDuck, ln)
	defer stop()
	var acceptErr error
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() == nil {
				acceptErr = fmt.Errorf("accept on %s: %w", ln.Addr(), err)
			}
			break
		}
		tc := s.tracker.add(c)
		go s.serveConn(tc)
	}
	s.tracker.drain(s.drainTimeout())
	return acceptErr
}

func (s *Server) drainTimeout() time.Duration {
	if s.DrainTimeout > 0 {
		return s.DrainTimeout
	}
	return 10 * time.Second
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// serveConn answers requests on one connection until the client closes, asks
// to close, sends something unparseable, or the server shuts down.
func (s *Server) serveConn(tc *trackedConn) {
	defer s.tracker.remove(tc)
	c := tc.Conn
	br := bufio.NewReaderSize(c, 4096)
	bw := bufio.NewWriterSize(c, 4096)
	local, remote := c.LocalAddr().String(), c.RemoteAddr().String()
	for {
		// Wait for the first byte while idle, so shutdown can tell idle
		// connections (close now) from busy ones (let them finish).
		if _, err := br.Peek(1); err != nil {
			return
		}
		if !tc.state.CompareAndSwap(connIdle, connBusy) {
			return // shutting down
		}
		req, err := readRequest(br)
		if err != nil {
			s.badRequest(bw, err)
			return
		}
		if req.contentLength > 0 {
			if req.contentLength > maxBodyBytes {
				writeSimple(bw, 413, "request body too large\n", false, false)
				bw.Flush()
				return
			}
			if _, err := io.CopyN(io.Discard, br, req.contentLength); err != nil {
				return
			}
		}
		// A lame server asks keep-alive clients to reconnect, which takes
		// them to another replica, rather than cutting them when it exits.
		keep := req.keepAlive && !s.tracker.closing.Load() && !s.lame.lame()
		if err := s.respond(bw, c, req, keep, local, remote); err != nil {
			return
		}
		// Flush only when no pipelined request is already waiting, so a
		// pipelined batch goes out in one write.
		if br.Buffered() == 0 || !keep {
			if err := bw.Flush(); err != nil {
				return
			}
		}
		if !keep || !tc.state.CompareAndSwap(connBusy, connIdle) {
			return
		}
		// drain sets closing before it looks for idle connections, so a
		// connection that became idle after that look sees the flag here.
		if s.tracker.closing.Load() {
			return
		}
	}
}

func (s *Server) badRequest(bw *bufio.Writer, err error) {
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF) {
		return
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return // reset or deadline: nobody to answer
	}
	status := 400
	switch {
	case errors.Is(err, errHeaderTooBig):
		status = 431
	case errors.Is(err, errUnsupportedTE):
		status = 501
	}
	s.logger().Debug("bad request", "err", err)
	writeSimple(bw, status, err.Error()+"\n", false, false)
	bw.Flush()
}

// respond writes the answer to req. Bodies up to the buffer size go through
// bw; /bytes bodies are written straight to the connection after the head.
func (s *Server) respond(bw *bufio.Writer, c net.Conn, req request, keep bool, local, remote string) error {
	head := req.method == "HEAD"
	if req.method != "GET" && !head {
		writeSimple(bw, 405, "method not allowed\n", keep, head)
		return nil
	}
	switch {
	case req.path == "/":
		body := "Name: " + s.Name + "\nRemoteAddr: " + remote + "\nLocalAddr: " + local + "\n"
		writeSimple(bw, 200, body, keep, head)
	case req.path == "/name":
		writeSimple(bw, 200, s.Name+"\n", keep, head)
	case req.path == "/chain":
		status, body := s.chainAnswer()
		writeSimple(bw, status, body, keep, head)
	case req.path == "/healthz":
		if s.Unhealthy || s.lame.lame() {
			writeSimple(bw, 503, "unhealthy\n", keep, head)
		} else {
			writeSimple(bw, 200, "ok\n", keep, head)
		}
	case req.path == "/bytes" || strings.HasPrefix(req.path, "/bytes/"):
		n, err := bytesCount(req)
		if err != nil {
			writeSimple(bw, 400, err.Error()+"\n", keep, head)
			return nil
		}
		writeHead(bw, 200, n, keep)
		if head || n == 0 {
			return nil
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		for n > 0 {
			chunk := min(n, int64(len(payload)))
			if _, err := c.Write(payload[:chunk]); err != nil {
				return err
			}
			n -= chunk
		}
	default:
		writeSimple(bw, 404, "not found\n", keep, head)
	}
	return nil
}

// bytesCount reads N from /bytes/N or /bytes?n=N.
func bytesCount(req request) (int64, error) {
	raw := strings.TrimPrefix(strings.TrimPrefix(req.path, "/bytes"), "/")
	if raw == "" {
		for kv := range strings.SplitSeq(req.query, "&") {
			if v, ok := strings.CutPrefix(kv, "n="); ok {
				raw = v
			}
		}
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || n < 0 || n > maxBytes {
		return 0, fmt.Errorf("byte count %q: want 0..%d", raw, maxBytes)
	}
	return n, nil
}

func writeSimple(bw *bufio.Writer, status int, body string, keep, head bool) {
	writeHead(bw, status, int64(len(body)), keep)
	if !head {
		bw.WriteString(body)
	}
}

func writeHead(bw *bufio.Writer, status int, length int64, keep bool) {
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(statusLine(status))
	bw.WriteString("\r\nContent-Type: text/plain\r\nContent-Length: ")
	var num [20]byte
	bw.Write(strconv.AppendInt(num[:0], length, 10))
	if keep {
		bw.WriteString("\r\n\r\n")
	} else {
		bw.WriteString("\r\nConnection: close\r\n\r\n")
	}
}

func statusLine(status int) string {
	switch status {
	case 200:
		return "200 OK"
	case 400:
		return "400 Bad Request"
	case 404:
		return "404 Not Found"
	case 405:
		return "405 Method Not Allowed"
	case 502:
		return "502 Bad Gateway"
	case 413:
		return "413 Content Too Large"
	case 431:
		return "431 Request Header Fields Too Large"
	case 501:
		return "501 Not Implemented"
	case 503:
		return "503 Service Unavailable"
	}
	return strconv.Itoa(status) + " Status"
}

// Connection states for graceful shutdown.
const (
	connIdle int32 = iota
	connBusy
	connClosing
)

type trackedConn struct {
	net.Conn
	state atomic.Int32
}

// tracker knows every open connection so shutdown can close idle ones at
// once and busy ones after the drain timeout.
type tracker struct {
	mu      sync.Mutex
	conns   map[*trackedConn]struct{}
	wg      sync.WaitGroup
	closing atomic.Bool
}

func (t *tracker) init() {
	t.mu.Lock()
	if t.conns == nil {
		t.conns = make(map[*trackedConn]struct{})
	}
	t.mu.Unlock()
}

func (t *tracker) add(c net.Conn) *trackedConn {
	tc := &trackedConn{Conn: c}
	t.mu.Lock()
	t.conns[tc] = struct{}{}
	t.wg.Add(1)
	t.mu.Unlock()
	return tc
}

func (t *tracker) remove(tc *trackedConn) {
	tc.Close()
	t.mu.Lock()
	delete(t.conns, tc)
	t.mu.Unlock()
	t.wg.Done()
}

// drain wakes idle connections so they exit, waits up to timeout for busy
// ones, then closes whatever is left and waits for their goroutines.
func (t *tracker) drain(timeout time.Duration) {
	t.closing.Store(true)
	t.each(func(tc *trackedConn) {
		if tc.state.CompareAndSwap(connIdle, connClosing) {
			tc.SetReadDeadline(time.Now())
		}
	})
	done := make(chan struct{})
	go func() { t.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-time.After(timeout):
	}
	t.each(func(tc *trackedConn) { tc.Close() })
	<-done
}

func (t *tracker) each(f func(*trackedConn)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for tc := range t.conns {
		f(tc)
	}
}
