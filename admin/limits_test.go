package admin

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tierlb/tierlb/backends"
)

const drainB1 = "/api/v1/services/app/backends/127.0.0.1:8001/drain"

// notDrained fails the test if the action of a refused request ran.
func notDrained(t *testing.T, f *fixture) {
	t.Helper()
	if st, _ := f.app.Backend("127.0.0.1:8001").State(); st == backends.StateDraining {
		t.Error("the action ran although its request was refused")
	}
}

func TestRequestBodyLimit(t *testing.T) {
	tests := []struct {
		name    string
		body    io.Reader
		length  int64 // -1: chunked, the length unknown in advance
		code    int
		errText string
	}{
		{"no body", nil, 0, http.StatusOK, ""},
		{"small body", strings.NewReader("{}"), 2, http.StatusOK, ""},
		{"declared too large", strings.NewReader(strings.Repeat("x", MaxBodyBytes+1)), MaxBodyBytes + 1,
			http.StatusRequestEntityTooLarge, "request body over 65536 bytes"},
		{"chunked too large", strings.NewReader(strings.Repeat("x", 4*MaxBodyBytes)), -1,
			http.StatusRequestEntityTooLarge, "request body over 65536 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startServer(t, Options{})
			req, err := http.NewRequest("POST", f.url+drainB1, tt.body)
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = tt.length
			if tt.length == -1 {
				req.Body = io.NopCloser(tt.body) // hide the length from the client
			}
			resp, err := f.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.code || !strings.Contains(string(body), tt.errText) {
				t.Fatalf("got %d %s, want %d with %q", resp.StatusCode, body, tt.code, tt.errText)
			}
			if tt.code != http.StatusOK {
				notDrained(t, f)
			}
		})
	}
}

// TestSlowBodyIsCut: a client that announces a body and sends it too slowly
// loses its connection at the read timeout, and its action never runs.
func TestSlowBodyIsCut(t *testing.T) {
	f := startServer(t, Options{ReadTimeout: 300 * time.Millisecond})
	c, err := net.Dial("tcp", f.srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	start := time.Now()
	_, err = io.WriteString(c, "POST "+drainB1+" HTTP/1.1\r\nHost: "+f.srv.Addr().String()+"\r\nContent-Length: 10\r\n\r\n{}")
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Errorf("answer %d, want 408 or a closed connection", resp.StatusCode)
		}
		// The server closes the connection after the answer.
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Error("the connection stays open after the cut")
		}
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("cut after %v; the read timeout is 300ms", took)
	}
	notDrained(t, f)
}
