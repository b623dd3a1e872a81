package admin

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tierlb/tierlb/backends"
)

// fixture is a running admin server over two services.
type fixture struct {
	srv    *Server
	url    string
	app    *backends.Set
	ready  atomic.Bool
	client *http.Client
	cancel context.CancelFunc
	done   chan error
}

// testServices returns "app" with two static backends and an empty "db".
func testServices(t *testing.T) (ServiceList, *backends.Set) {
	t.Helper()
	app := newTestSet(t, "app", "127.0.0.1:8001", "127.0.0.1:8002")
	return ServiceList{
		{Name: "app", Listen: "127.0.0.1:9000", Set: app},
		{Name: "db", Listen: "127.0.0.1:9001", Set: newTestSet(t, "db")},
	}, app
}

var testExplanations = []Explanation{
	{Container: "0123456789abcdef", Name: "web-1", Service: "app", Network: "tier1", Address: "172.20.0.3:80", Routed: true, Reason: "routed on tier1"},
	{Container: "fedcba9876543210", Name: "cron", Reason: "no tierlb.service label"},
}

// startServer runs an admin server on 127.0.0.1:0 until the test ends.
func startServer(t *testing.T, opts Options) *fixture {
	t.Helper()
	f := start(t, opts)
	t.Cleanup(func() { f.stop(t) })
	return f
}

// start runs an admin server on 127.0.0.1:0 over testServices; the caller
// stops it. /readyz follows f.ready unless opts.Ready is set.
func start(t *testing.T, opts Options) *fixture {
	t.Helper()
	services, app := testServices(t)
	f := startWith(t, opts, services)
	f.app = app
	return f
}

// startServerWith runs a server over the given services until the test ends.
func startServerWith(t *testing.T, opts Options, services Services) *fixture {
	t.Helper()
	f := startWith(t, opts, services)
	t.Cleanup(func() { f.stop(t) })
	return f
}

func startWith(t *testing.T, opts Options, services Services) *fixture {
	t.Helper()
	f := &fixture{client: &http.Client{Timeout: 10 * time.Second}, done: make(chan error, 1)}
	f.ready.Store(true)
	opts.Listen = "127.0.0.1:0"
	opts.Services = services
	if opts.Ready == nil {
		opts.Ready = func() (bool, string) {
			if f.ready.Load() {
				return true, ""
			}
			return false, "draining: shutting down"
		}
	}
	f.srv = New(opts)
	if err := f.srv.Listen(); err != nil {
		t.Fatal(err)
	}
	f.url = "http://" + f.srv.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	go func() { f.done <- f.srv.Run(ctx) }()
	return f
}

// stop cancels Run and waits for it, failing the test if it hangs.
func (f *fixture) stop(t *testing.T) {
	t.Helper()
	f.cancel()
	f.client.CloseIdleConnections()
	select {
	case err := <-f.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("Run did not return within 10s of cancel")
	}
}

// do sends one request and returns the status, body and response headers.
func (f *fixture) do(t *testing.T, method, path string, header http.Header) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, f.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body), resp.Header
}

// httptestRecord serves one request on h with the given Host header.
func httptestRecord(h http.Handler, method, path, host string, header http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	req.Host = host
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}
