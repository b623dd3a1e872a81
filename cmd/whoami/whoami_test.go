package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tierlb/tierlb/internal/testkit"
)

// startServer runs a Server on 127.0.0.1:0 and stops it (checking that Serve
// returned, i.e. every connection goroutine finished) at cleanup.
func startServer(t *testing.T, s *Server) (addr string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	var stopped bool
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	}
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

func TestRoutes(t *testing.T) {
	addr, _ := startServer(t, &Server{Name: "web-1"})
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	tests := []struct {
		name, method, path string
		status             int
		body               string // exact, or prefix when prefix is set
		prefix             bool
		length             int
	}{
		{name: "root", method: "GET", path: "/", status: 200, body: "Name: web-1\nRemoteAddr: 127.0.0.1:", prefix: true},
		{name: "name", method: "GET", path: "/name", status: 200, body: "web-1\n"},
		{name: "healthz", method: "GET", path: "/healthz", status: 200, body: "ok\n"},
		{name: "bytes path", method: "GET", path: "/bytes/1048576", status: 200, length: 1 << 20},
		{name: "bytes query", method: "GET", path: "/bytes?n=3", status: 200, body: "abc"},
		{name: "bytes over one payload", method: "GET", path: "/bytes/2500000", status: 200, length: 2500000},
		{name: "bytes zero", method: "GET", path: "/bytes/0", status: 200, body: ""},
		{name: "bytes bad", method: "GET", path: "/bytes/x", status: 400, body: "byte count", prefix: true},
		{name: "bytes too many", method: "GET", path: "/bytes/99999999999", status: 400, body: "byte count", prefix: true},
		{name: "head", method: "HEAD", path: "/bytes/10", status: 200, body: ""},
		{name: "not found", method: "GET", path: "/nope", status: 404, body: "not found\n"},
		{name: "post", method: "POST", path: "/", status: 405, body: "method not allowed\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, "http://"+addr+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
			}
			switch {
			case tt.length > 0:
				if len(body) != tt.length {
					t.Errorf("got %d bytes, want %d", len(body), tt.length)
				}
			case tt.prefix:
				if !strings.HasPrefix(string(body), tt.body) {
					t.Errorf("body %q, want prefix %q", body, tt.body)
				}
			case string(body) != tt.body:
				t.Errorf("body %q, want %q", body, tt.body)
			}
		})
	}
}

func TestUnhealthy(t *testing.T) {
	addr, _ := startServer(t, &Server{Name: "x", Unhealthy: true})
	if err := probeHealth(addr, 2*time.Second); err == nil {
		t.Fatal("probe of an unhealthy server succeeded")
	}
	addr2, _ := startServer(t, &Server{Name: "y"})
	if err := probeHealth(addr2, 2*time.Second); err != nil {
		t.Fatalf("probe of a healthy server: %v", err)
	}
}

// TestKeepAlivePipelined sends three requests in one write and expects three
// answers on the same connection, then a close after "Connection: close".
func TestKeepAlivePipelined(t *testing.T) {
	addr, _ := startServer(t, &Server{Name: "p"})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	reqs := "GET /name HTTP/1.1\r\nHost: a\r\n\r\n" +
		"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n" +
		"GET /name HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(c, reqs); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for i, want := range []string{"p\n", "ok\n", "p\n"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if string(body) != want {
			t.Errorf("response %d body %q, want %q", i, body, want)
		}
		if i == 2 && !resp.Close {
			t.Error("last response does not announce Connection: close")
		}
	}
	if n, err := br.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("after Connection: close got n=%d err=%v, want EOF", n, err)
	}
}

func TestBadRequests(t *testing.T) {
	tests := []struct {
		name, raw, status string
	}{
		{name: "garbage", raw: "HELLO\r\n\r\n", status: "400"},
		{name: "bad proto", raw: "GET / SPDY/9\r\n\r\n", status: "400"},
		{name: "chunked", raw: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", status: "501"},
		{name: "huge header", raw: "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 5000) + "\r\n\r\n", status: "431"},
		{name: "body too large", raw: "POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", status: "413"},
	}
	addr, _ := startServer(t, &Server{Name: "b"})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, tt.raw)
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(line, "HTTP/1.1 "+tt.status) {
				t.Errorf("status line %q, want %s", line, tt.status)
			}
		})
	}
}

// TestGracefulShutdown: an idle keep-alive connection is closed at once, a
// response in flight is finished before Serve returns.
func TestGracefulShutdown(t *testing.T) {
	addr, stop := startServer(t, &Server{Name: "g", DrainTimeout: 5 * time.Second})
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	busy, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busy.SetDeadline(time.Now().Add(5 * time.Second))
	idle.SetDeadline(time.Now().Add(5 * time.Second))
	// A body much larger than the socket buffers: once the status line is
	// here, the server is blocked writing the rest, i.e. busy.
	const size = 32 << 20
	io.WriteString(busy, "GET /bytes/33554432 HTTP/1.1\r\nHost: a\r\n\r\n")
	br := bufio.NewReader(busy)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("busy connection: %v", err)
	}
	defer resp.Body.Close()

	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	if _, err := idle.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("idle connection: got %v, want EOF at shutdown", err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || n != size {
		t.Errorf("busy connection got %d bytes (%v), want all %d", n, err, size)
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("busy connection after its response: got %v, want EOF", err)
	}
	<-stopped
}

func TestEchoHalfClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&Echo{DrainTimeout: time.Second}).Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("echo Serve: %v", err)
		}
	})
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	msg := bytes.Repeat([]byte("0123456789"), 20000) // larger than socket buffers
	go func() {
		c.Write(msg)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echoed %d bytes, want %d identical", len(got), len(msg))
	}
}

func TestResolveName(t *testing.T) {
	t.Setenv("NAME", "from-env")
	if got := resolveName("flag"); got != "flag" {
		t.Errorf("flag: got %q", got)
	}
	if got := resolveName(""); got != "from-env" {
		t.Errorf("env: got %q", got)
	}
	t.Setenv("NAME", "")
	if got := resolveName(""); got == "" {
		t.Error("hostname fallback is empty")
	}
}

func BenchmarkKeepAlive(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go (&Server{Name: "bench"}).Serve(ctx, ln)
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	req := []byte("GET /name HTTP/1.1\r\nHost: a\r\n\r\n")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// TestNoGoroutineLeak: after Serve returns, no connection goroutine is left,
// whether the clients closed or were cut by shutdown.
func TestNoGoroutineLeak(t *testing.T) {
	base := runtime.NumGoroutine()
	addr, stop := startServer(t, &Server{Name: "l", DrainTimeout: time.Second})
	var conns []net.Conn
	for i := range 10 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET /name HTTP/1.1\r\nHost: a\r\n\r\n")
		if _, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			c.Close() // half close themselves, half are cut at shutdown
		} else {
			conns = append(conns, c)
		}
	}
	stop()
	for _, c := range conns {
		c.Close()
	}
	if !testkit.Within(5*time.Second, func() bool { return runtime.NumGoroutine() <= base }) {
		t.Errorf("%d goroutines after shutdown, %d before", runtime.NumGoroutine(), base)
	}
}
