package main

import (
	"bufio"
	"errors"
	"strings"
	"testing"
)

func TestReadRequest(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		want    request
		wantErr error
	}{
		{name: "get 1.1", raw: "GET / HTTP/1.1\r\nHost: a\r\n\r\n", want: request{method: "GET", path: "/", keepAlive: true}},
		{name: "query", raw: "GET /bytes?n=5 HTTP/1.1\r\n\r\n", want: request{method: "GET", path: "/bytes", query: "n=5", keepAlive: true}},
		{name: "close", raw: "GET / HTTP/1.1\r\nConnection: Close\r\n\r\n", want: request{method: "GET", path: "/"}},
		{name: "close token list", raw: "GET / HTTP/1.1\r\nconnection: upgrade, close\r\n\r\n", want: request{method: "GET", path: "/"}},
		{name: "1.0 default close", raw: "GET / HTTP/1.0\r\n\r\n", want: request{method: "GET", path: "/"}},
		{name: "1.0 keep-alive", raw: "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", want: request{method: "GET", path: "/", keepAlive: true}},
		{name: "bare LF", raw: "HEAD /name HTTP/1.1\nX: y\n\n", want: request{method: "HEAD", path: "/name", keepAlive: true}},
		{name: "content-length", raw: "POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n", want: request{method: "POST", path: "/", keepAlive: true, contentLength: 12}},
		{name: "identity TE", raw: "GET / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n", want: request{method: "GET", path: "/", keepAlive: true}},
		{name: "bad content-length", raw: "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", wantErr: errMalformed},
		{name: "chunked", raw: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", wantErr: errUnsupportedTE},
		{name: "no path", raw: "GET HTTP/1.1\r\n\r\n", wantErr: errMalformed},
		{name: "relative target", raw: "GET x HTTP/1.1\r\n\r\n", wantErr: errMalformed},
		{name: "header without colon", raw: "GET / HTTP/1.1\r\nnocolon\r\n\r\n", wantErr: errMalformed},
		{name: "http2 preface", raw: "PRI * HTTP/2.0\r\n\r\n", wantErr: errMalformed},
		{name: "too long line", raw: "GET /" + strings.Repeat("a", 5000) + " HTTP/1.1\r\n\r\n", wantErr: errHeaderTooBig},
		{name: "too many headers", raw: "GET / HTTP/1.1\r\n" + strings.Repeat("X-A: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\r\n", 600) + "\r\n", wantErr: errHeaderTooBig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readRequest(bufio.NewReaderSize(strings.NewReader(tt.raw), 4096))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestBytesCount(t *testing.T) {
	tests := []struct {
		name  string
		req   request
		want  int64
		isErr bool
	}{
		{name: "path", req: request{path: "/bytes/1048576"}, want: 1 << 20},
		{name: "query", req: request{path: "/bytes", query: "a=b&n=7"}, want: 7},
		{name: "missing", req: request{path: "/bytes"}, isErr: true},
		{name: "negative", req: request{path: "/bytes/-1"}, isErr: true},
		{name: "too big", req: request{path: "/bytes/1073741825"}, isErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := bytesCount(tt.req)
			if (err != nil) != tt.isErr || got != tt.want {
				t.Errorf("got %d, %v; want %d, error %v", got, err, tt.want, tt.isErr)
			}
		})
	}
}

// FuzzReadRequest: any input either parses into a request whose invariants
// hold or fails with an error; it never panics.
func FuzzReadRequest(f *testing.F) {
	f.Add("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	f.Add("GET /bytes?n=5 HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nabc")
	f.Add("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
	f.Add("\r\n")
	f.Fuzz(func(t *testing.T, raw string) {
		br := bufio.NewReaderSize(strings.NewReader(raw), 4096)
		req, err := readRequest(br)
		if err != nil {
			return
		}
		if req.method == "" || !strings.HasPrefix(req.path, "/") || req.contentLength < 0 {
			t.Fatalf("accepted an invalid request %+v from %q", req, raw)
		}
		if strings.Contains(req.path, "?") {
			t.Fatalf("path %q kept its query", req.path)
		}
	})
}
