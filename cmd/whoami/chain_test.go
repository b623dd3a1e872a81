package main

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tierlb/tierlb/internal/testkit"
)

// countingListener counts the connections a server accepts.
type countingListener struct {
	net.Listener
	accepts atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepts.Add(1)
	}
	return c, err
}

func getChain(t *testing.T, addr string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + "/chain")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestChainThroughThreeTiers(t *testing.T) {
	db, _ := startServer(t, &Server{Name: "db-1"})
	app, _ := startServer(t, &Server{Name: "app-2", Chain: "http://" + db + "/chain"})
	web, _ := startServer(t, &Server{Name: "web-1", Chain: "http://" + app + "/chain"})
	for _, tt := range []struct{ name, addr, want string }{
		{"the last tier", db, "db-1\n"},
		{"one hop", app, "app-2 -> db-1\n"},
		{"two hops", web, "web-1 -> app-2 -> db-1\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if code, body := getChain(t, tt.addr); code != 200 || body != tt.want {
				t.Fatalf("GET /chain: %d %q, want 200 %q", code, body, tt.want)
			}
		})
	}
}

// A load balancer between the tiers picks a replica per connection: each
// call must be a connection of its own, or the rotation would not show.
func TestChainOpensAConnectionPerCall(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	next := &Server{Name: "next"}
	ctx := t.Context()
	done := make(chan error, 1)
	go func() { done <- next.Serve(ctx, cl) }()
	t.Cleanup(func() { <-done })
	addr, _ := startServer(t, &Server{Name: "first", Chain: "http://" + ln.Addr().String() + "/chain"})
	for range 3 {
		if code, body := getChain(t, addr); code != 200 || body != "first -> next\n" {
			t.Fatalf("GET /chain: %d %q", code, body)
		}
	}
	testkit.Eventually(t, 5*time.Second, "3 connections to the next tier", func() bool { return cl.accepts.Load() == 3 })
}

func TestChainReportsAMissingTier(t *testing.T) {
	down := testkit.ClosedPort(t)
	addr, _ := startServer(t, &Server{Name: "app-1", Chain: "http://" + down + "/chain"})
	code, body := getChain(t, addr)
	if code != 502 || !strings.HasPrefix(body, "app-1 -> error: ") || !strings.Contains(body, "refused") {
		t.Fatalf("GET /chain with the next tier down: %d %q, want 502 naming the refusal", code, body)
	}
	unhealthy, _ := startServer(t, &Server{Name: "db-1", Unhealthy: true, Chain: "http://" + down + "/nope"})
	addr2, _ := startServer(t, &Server{Name: "app-2", Chain: "http://" + unhealthy + "/healthz"})
	if code, body := getChain(t, addr2); code != 502 || !strings.Contains(body, "503") {
		t.Fatalf("GET /chain with the next tier answering 503: %d %q, want 502 naming the 503", code, body)
	}
}

func TestCheckChainURL(t *testing.T) {
	for _, tt := range []struct {
		raw string
		ok  bool
	}{
		{"", true},
		{"http://app:8081/chain", true},
		{"app:8081", false},
		{"https://app/chain", false},
		{"http:///chain", false},
		{"http://a b/", false},
	} {
		t.Run(tt.raw, func(t *testing.T) {
			err := checkChainURL(tt.raw)
			if (err == nil) != tt.ok {
				t.Fatalf("checkChainURL(%q) = %v, want ok=%v", tt.raw, err, tt.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "--chain") {
				t.Fatalf("error %q does not name the flag", err)
			}
		})
	}
}
