package admin

import (
	"context"
	"errors"
	"net"
	"net/http"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tierlb/tierlb/internal/testkit"
)

func TestEndpoints(t *testing.T) {
	f := startServer(t, Options{Explain: func() []Explanation { return testExplanations }})
	tests := []struct {
		name, method, path string
		code               int
		contentType        string
		body               []string // substrings the body must contain
	}{
		{"healthz", "GET", "/healthz", 200, "text/plain", []string{"ok"}},
		{"readyz", "GET", "/readyz", 200, "text/plain", []string{"ready"}},
		{"metrics", "GET", "/metrics", 200, "text/plain", []string{
			`tierlb_backend_up{backend="127.0.0.1:8001",service="app"} 1`,
			`tierlb_backend_connect_errors_total{backend="127.0.0.1:8002",reason="timeout",service="app"} 0`,
		}},
		{"services", "GET", "/api/v1/services", 200, "application/json", []string{`"name": "app"`, `"name": "db"`}},
		{"explain", "GET", "/api/v1/explain", 200, "application/json", []string{`"name": "cron"`, `"reason": "no tierlb.service label"`}},
		{"status page", "GET", "/", 200, "text/html", []string{`<meta http-equiv="refresh" content="5">`, "127.0.0.1:8001"}},
		{"head status page", "HEAD", "/", 200, "text/html", nil},
		{"unknown path", "GET", "/nope", 404, "text/plain", []string{"404 page not found"}},
		{"unknown api path", "GET", "/api/v1/servicez", 404, "text/plain", nil},
		{"pprof off", "GET", "/debug/pprof/", 404, "text/plain", nil},
		{"POST healthz", "POST", "/healthz", 405, "text/plain", nil},
		{"GET drain", "GET", "/api/v1/services/app/backends/127.0.0.1:8001/drain", 405, "text/plain", nil},
		{"GET unknown action", "GET", "/api/v1/services/app/backends/127.0.0.1:8001/up", 405, "text/plain", nil},
		{"DELETE services", "DELETE", "/api/v1/services", 405, "text/plain", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, h := f.do(t, tt.method, tt.path, nil)
			if code != tt.code {
				t.Fatalf("%s %s: status %d, want %d; body %q", tt.method, tt.path, code, tt.code, body)
			}
			if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, tt.contentType) {
				t.Errorf("Content-Type %q, want %s", ct, tt.contentType)
			}
			if code == 405 && h.Get("Allow") == "" {
				t.Error("405 without an Allow header")
			}
			for _, want := range tt.body {
				if !strings.Contains(body, want) {
					t.Errorf("body lacks %q:\n%s", want, body)
				}
			}
		})
	}
}

func TestReadyzFollowsReadyFunc(t *testing.T) {
	f := startServer(t, Options{})
	f.ready.Store(false)
	code, body, _ := f.do(t, "GET", "/readyz", nil)
	if code != http.StatusServiceUnavailable || body != "draining: shutting down\n" {
		t.Fatalf("not ready: got %d %q, want 503 with the reason", code, body)
	}
	f.ready.Store(true)
	if code, body, _ := f.do(t, "GET", "/readyz", nil); code != http.StatusOK || body != "ready\n" {
		t.Fatalf("ready again: got %d %q, want 200 ready", code, body)
	}
}

// TestReadyzNotesWhatIsDegraded: ready with a note is a 200 whose body
// says ready first and the note after.
func TestReadyzNotesWhatIsDegraded(t *testing.T) {
	f := startServer(t, Options{Ready: func() (bool, string) { return true, "docker engine unreachable" }})
	code, body, _ := f.do(t, "GET", "/readyz", nil)
	if code != http.StatusOK || body != "ready\ndocker engine unreachable\n" {
		t.Fatalf("got %d %q, want 200 with ready and the note", code, body)
	}
}

func TestZeroOptions(t *testing.T) {
	h := New(Options{}).Handler()
	tests := []struct{ path, want string }{
		{"/api/v1/services", "[]\n"},
		{"/api/v1/explain", "[]\n"},
		{"/readyz", "ready\n"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			rec := httptestRecord(h, "GET", tt.path, "127.0.0.1:9090", nil)
			if rec.Code != 200 || rec.Body.String() != tt.want {
				t.Fatalf("got %d %q, want 200 %q", rec.Code, rec.Body.String(), tt.want)
			}
		})
	}
	rec := httptestRecord(h, "GET", "/", "127.0.0.1:9090", nil)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "no services") {
		t.Fatalf("status page without services: %d %q", rec.Code, rec.Body.String())
	}
}

func TestPprofOption(t *testing.T) {
	f := startServer(t, Options{Pprof: true})
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/goroutine?debug=1"} {
		if code, body, _ := f.do(t, "GET", path, nil); code != 200 || body == "" {
			t.Errorf("GET %s: %d, want 200 with a body", path, code)
		}
	}
	code, body, _ := f.do(t, "GET", "/", nil)
	if code != 200 || !strings.Contains(body, `href="/debug/pprof/"`) {
		t.Errorf("status page does not link pprof when it is on")
	}
}

func TestListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	err = New(Options{Listen: ln.Addr().String()}).Run(context.Background())
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), "admin listen "+ln.Addr().String()) {
		t.Fatalf("Run on a taken port: %v; want EADDRINUSE naming the address", err)
	}
}

// TestRunStopsWithoutLeaks serves keep-alive and in-flight requests, cancels,
// and checks Run returns and every goroutine it started is gone.
func TestRunStopsWithoutLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		f := start(t, Options{})
		defer f.stop(t)
		// The history's sampler runs with the server: its baseline is
		// taken at the start.
		testkit.Eventually(t, 10*time.Second, "the history's first sample", func() bool {
			f.srv.history.mu.RLock()
			defer f.srv.history.mu.RUnlock()
			return f.srv.history.n == 1
		})
		for range 3 {
			for _, p := range []string{"/metrics", "/", "/api/v1/services"} {
				if code, _, _ := f.do(t, "GET", p, nil); code != 200 {
					t.Fatalf("GET %s: %d", p, code)
				}
			}
		}
		// An idle keep-alive connection from another client must not hold
		// the shutdown.
		c, err := net.Dial("tcp", f.srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}()
	if !testkit.Within(5*time.Second, func() bool { return runtime.NumGoroutine() <= before }) {
		n := runtime.NumGoroutine()
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines after Run returned, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

func TestCloseReleasesUnusedListener(t *testing.T) {
	s := New(Options{Listen: "127.0.0.1:0"})
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	addr := s.Addr().String()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s.Addr() != nil {
		t.Error("Addr after Close is not nil")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("address still taken after Close: %v", err)
	}
	ln.Close()
}

// TestUseListener: a listener handed over is served as the bound one would
// be; a second one is refused.
func TestUseListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(Options{Listen: "127.0.0.1:1"}) // never bound: the listener given wins
	if err := s.Use(ln); err != nil {
		t.Fatal(err)
	}
	if err := s.Use(ln); err == nil {
		t.Fatal("a second listener was accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + ln.Addr().String() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || s.Addr().String() != ln.Addr().String() {
		t.Fatalf("status %d, addr %v", resp.StatusCode, s.Addr())
	}
}
