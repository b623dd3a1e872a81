package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/tierlb/tierlb/internal/testkit"
)

// get sends one request on a new connection and returns the response with
// its body read.
func get(addr, path string) (*http.Response, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, err
}

// TestLameDuck: after ctx ends the server goes on accepting and answering
// for LameDuck, asking clients to close and failing its health check, then
// closes its listener and a connection that never sent a byte.
func TestLameDuck(t *testing.T) {
	const lame = 3 * time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&Server{Name: "d", LameDuck: lame, DrainTimeout: time.Second}).Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	silent, err := net.Dial("tcp", addr) // like a balancer's dial whose client has not spoken yet
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	stopped := time.Now()
	cancel()
	testkit.Eventually(t, lame, "/healthz failing in the lame-duck period", func() bool {
		resp, err := get(addr, "/healthz")
		return err == nil && resp.StatusCode == http.StatusServiceUnavailable
	})
	resp, err := get(addr, "/name")
	if err != nil {
		t.Fatalf("a new connection in the lame-duck period: %v", err)
	}
	if !resp.Close || resp.StatusCode != http.StatusOK {
		t.Errorf("lame-duck answer: status %d, close %v; want 200 with Connection: close", resp.StatusCode, resp.Close)
	}
	// The silent connection still gets its answer when it speaks.
	silent.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(silent, "GET /name HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if resp, err := http.ReadResponse(bufio.NewReader(silent), nil); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("connection opened before the stop, first request in the lame-duck period: %v", err)
	}
	if time.Since(stopped) >= lame {
		t.Skip("the machine is too slow to check within the lame-duck period")
	}

	testkit.Eventually(t, lame+10*time.Second, "the listener closed after the lame-duck period", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	if d := time.Since(stopped); d < lame {
		t.Errorf("listener closed %s after the stop, before the %s lame-duck period ended", d, lame)
	}
}
