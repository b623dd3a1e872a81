package health

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tierlb/tierlb/internal/testkit"
)

// TestCheckersAgainstMisbehavingBackends runs every address-based checker
// against real loopback servers that refuse, hang, reset, answer late or
// answer well.
func TestCheckersAgainstMisbehavingBackends(t *testing.T) {
	noLeaks(t)
	const timeout = 150 * time.Millisecond
	okHTTP := reply(httpReply(200))
	late := answerAfter(3*timeout, httpReply(200))
	mustSE := func(send, expect string) Checker {
		c, err := NewSendExpectChecker(send, expect)
		if err != nil {
			t.Fatalf("send-expect %q %q: %v", send, expect, err)
		}
		return c
	}
	httpOK := NewHTTPChecker("/healthz", "", StatusRanges{{200, 399}})
	pingPong := mustSE(`PING\r\n`, `+PONG`)

	refused := func(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
	reset := func(err error) bool {
		if err == nil {
			return false
		}
		// A reset may surface as ECONNRESET or as an early EOF, depending on
		// whether the RST arrives before or after the request is written.
		return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
			strings.Contains(err.Error(), "EOF") || errors.Is(err, errNoMatch)
	}
	noMatch := func(err error) bool { return errors.Is(err, errNoMatch) }
	anyErr := func(err error) bool { return err != nil }

	tests := []struct {
		name    string
		checker Checker
		server  func(*tcpServer, net.Conn) // nil: nothing listens
		wantErr func(error) bool           // nil: the check passes
	}{
		{"tcp/ok", TCPChecker{}, blackhole, nil},
		{"tcp/refused", TCPChecker{}, nil, refused},
		// A connect check passes whatever happens after the handshake (that
		// is what tcp means, as in HAProxy), unless the RST lands before the
		// kernel reports the connect done: then it fails as reset, never
		// with any other error.
		{"tcp/reset after accept", TCPChecker{}, resetter, func(err error) bool { return err == nil || reset(err) }},

		{"http/ok", httpOK, okHTTP, nil},
		{"http/refused", httpOK, nil, refused},
		{"http/never answers", httpOK, blackhole, isTimeout},
		{"http/reset after accept", httpOK, resetter, reset},
		{"http/answers after the timeout", httpOK, late, isTimeout},
		{"http/503", httpOK, reply(httpReply(503)), anyErr},
		{"http/redirect is a status, not followed", httpOK, reply("HTTP/1.1 302 Found\r\nLocation: http://192.0.2.1/\r\nContent-Length: 0\r\n\r\n"), nil},
		{"http/not http", httpOK, reply("SSH-2.0-OpenSSH\r\n"), anyErr},

		{"send-expect/substring", pingPong, reply("+PONG\r\n"), nil},
		{"send-expect/regexp", mustSE(`PING\n`, `re:^\+PO+NG\r?$`), reply("+POOONG\r"), nil},
		{"send-expect/regexp no match", mustSE(`PING\n`, `re:^\+PONG$`), reply("-ERR\r\n"), noMatch},
		{"send-expect/banner only", mustSE(``, `re:^SSH-2\.0-`), banner("SSH-2.0-test\r\n"), nil},
		{"send-expect/partial reply then close", pingPong, reply("+PO"), noMatch},
		{"send-expect/refused", pingPong, nil, refused},
		{"send-expect/never answers", pingPong, blackhole, isTimeout},
		{"send-expect/reset after accept", pingPong, resetter, reset},
		{"send-expect/answers after the timeout", pingPong, answerAfter(3*timeout, "+PONG\r\n"), isTimeout},
		{"send-expect/closes without match", pingPong, reply("-ERR\r\n"), noMatch},
		{"send-expect/send only", mustSE(`QUIT\r\n`, ``), blackhole, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := testkit.ClosedPort(t)
			if tt.server != nil {
				addr = startTCP(t, tt.server).addr()
			}
			start := time.Now()
			err := tt.checker.Check(probeCtx(t, timeout), addr)
			if took := time.Since(start); took > timeout+time.Second {
				t.Errorf("check took %v, timeout was %v", took, timeout)
			}
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("check failed: %v", err)
			case tt.wantErr != nil && !tt.wantErr(err):
				t.Fatalf("check result %v is not the expected failure", err)
			}
		})
	}
}

// TestSendExpectSplitReply checks that the reader keeps reading until the
// expected text is complete, across segments.
func TestSendExpectSplitReply(t *testing.T) {
	noLeaks(t)
	second := make(chan struct{})
	srv := startTCP(t, func(s *tcpServer, c net.Conn) {
		buf := make([]byte, 64)
		if _, err := c.Read(buf); err != nil {
			return
		}
		c.Write([]byte("+PO"))
		select {
		case <-second:
		case <-s.done:
			return
		}
		c.Write([]byte("NG\r\n"))
		blackhole(s, c)
	})
	chk, err := NewSendExpectChecker(`PING\r\n`, `+PONG`)
	if err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	go func() { res <- chk.Check(probeCtx(t, 5*time.Second), srv.addr()) }()
	select {
	case err := <-res:
		t.Fatalf("check ended before the reply was complete: %v", err)
	case <-time.After(20 * time.Millisecond):
		// Not a synchronization: only a chance for a buggy checker to give
		// up early on the partial reply.
	}
	close(second)
	if err := <-res; err != nil {
		t.Fatalf("check: %v", err)
	}
}

// TestSendExpectBoundedReply: a backend that talks forever without the
// expected text fails the check after maxReply bytes, not at the timeout.
func TestSendExpectBoundedReply(t *testing.T) {
	noLeaks(t)
	srv := startTCP(t, func(s *tcpServer, c net.Conn) {
		chunk := []byte(strings.Repeat("x", 4096))
		for i := 0; i < 2*maxReply/len(chunk); i++ {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
		blackhole(s, c)
	})
	chk, err := NewSendExpectChecker(``, `+OK`)
	if err != nil {
		t.Fatal(err)
	}
	err = chk.Check(probeCtx(t, 5*time.Second), srv.addr())
	if !errors.Is(err, errNoMatch) || !strings.Contains(err.Error(), "65536 bytes") {
		t.Fatalf("err = %v, want no match within 65536 bytes", err)
	}
}

// TestHTTPCheckRequest checks what the probe sends: method, path, Host.
func TestHTTPCheckRequest(t *testing.T) {
	noLeaks(t)
	var status atomic.Int32
	type seen struct{ method, uri, host, ua string }
	got := make(chan seen, 8)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Method, r.RequestURI, r.Host, r.UserAgent()}
		w.WriteHeader(int(status.Load()))
	}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")

	tests := []struct {
		name, path, host, expect string
		status                   int
		wantHost                 string
		pass                     bool
	}{
		{"default host is the address", "/healthz", "", "200-399", 200, addr, true},
		{"host header", "/ready?full=1", "app.internal", "200", 200, "app.internal", true},
		{"204 in a list", "/", "", "200,204,300-399", 204, addr, true},
		{"205 not in the list", "/", "", "200,204,300-399", 205, addr, false},
		{"500 outside", "/", "", "200-399", 500, addr, false},
		{"503 accepted on purpose", "/", "", "503", 503, addr, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := ParseStatusRanges(tt.expect)
			if err != nil {
				t.Fatal(err)
			}
			status.Store(int32(tt.status))
			err = NewHTTPChecker(tt.path, tt.host, rs).Check(probeCtx(t, 2*time.Second), addr)
			if (err == nil) != tt.pass {
				t.Fatalf("check error = %v, want pass=%v", err, tt.pass)
			}
			s := <-got
			if s.method != http.MethodGet || s.uri != tt.path || s.host != tt.wantHost || s.ua != "tierlb-health" {
				t.Fatalf("request = %+v, want GET %s Host %s", s, tt.path, tt.wantHost)
			}
			if !tt.pass && !strings.Contains(err.Error(), "want "+rs.String()) {
				t.Fatalf("error %q does not say which statuses were wanted", err)
			}
		})
	}
}

// TestCheckHonoursCancel: a probe blocked on a silent backend returns as
// soon as its context is canceled, even without a deadline (shutdown).
func TestCheckHonoursCancel(t *testing.T) {
	noLeaks(t)
	srv := startTCP(t, blackhole)
	se, _ := NewSendExpectChecker(`PING\n`, `PONG`)
	for name, c := range map[string]Checker{
		"http":        NewHTTPChecker("/", "", StatusRanges{{200, 200}}),
		"send-expect": se,
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			res := make(chan error, 1)
			go func() { res <- c.Check(ctx, srv.addr()) }()
			testkit.Eventually(t, 2*time.Second, "the probe to connect", func() bool { return srv.accepted.Load() > 0 })
			cancel()
			select {
			case err := <-res:
				if err == nil {
					t.Fatal("canceled check passed")
				}
			case <-time.After(2 * time.Second):
				t.Fatal("check did not return after cancel")
			}
			srv.accepted.Store(0)
		})
	}
}
