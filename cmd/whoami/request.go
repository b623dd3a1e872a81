package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// maxHeaderBytes bounds a request head (request line and headers). wrk and
// health checkers send a few hundred bytes; anything near this is abuse.
const maxHeaderBytes = 16 << 10

// maxBodyBytes bounds a request body that is read and thrown away, so a client
// cannot keep a worker busy forever.
const maxBodyBytes = 1 << 20

var (
	errMalformed     = errors.New("malformed request")
	errHeaderTooBig  = errors.New("request head too large")
	errUnsupportedTE = errors.New("unsupported transfer-encoding")
)

// request is the part of an HTTP/1.x request head that whoami acts on.
type request struct {
	method string
	path   string // without the query
	query  string // without the '?'
	// keepAlive is HTTP/1.1's default unless "Connection: close", and
	// HTTP/1.0's only with "Connection: keep-alive".
	keepAlive     bool
	contentLength int64
}

// readRequest reads one request head from br. It reads line by line with
// ReadSlice so the common case allocates only the method and path strings.
func readRequest(br *bufio.Reader) (request, error) {
	var req request
	line, err := readLine(br, 0)
	if err != nil {
		return req, err
	}
	total := len(line)
	method, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok || len(method) == 0 {
		return req, fmt.Errorf("request line %q: %w", truncate(line), errMalformed)
	}
	target, proto, ok := bytes.Cut(rest, []byte{' '})
	if !ok || len(target) == 0 || target[0] != '/' {
		return req, fmt.Errorf("request line %q: %w", truncate(line), errMalformed)
	}
	switch string(proto) {
	case "HTTP/1.1":
		req.keepAlive = true
	case "HTTP/1.0":
	default:
		return req, fmt.Errorf("protocol %q: %w", truncate(proto), errMalformed)
	}
	req.method = internMethod(method)
	p, q, _ := bytes.Cut(target, []byte{'?'})
	req.path = internPath(p)
	req.query = string(q)

	for {
		line, err := readLine(br, total)
		if err != nil {
			return req, err
		}
		total += len(line)
		if len(line) == 0 {
			return req, nil
		}
		name, value, ok := bytes.Cut(line, []byte{':'})
		if !ok || len(name) == 0 {
			return req, fmt.Errorf("header %q: %w", truncate(line), errMalformed)
		}
		value = bytes.TrimSpace(value)
		switch {
		case asciiEqualFold(name, "connection"):
			if containsToken(value, "close") {
				req.keepAlive = false
			} else if containsToken(value, "keep-alive") {
				req.keepAlive = true
			}
		case asciiEqualFold(name, "content-length"):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 {
				return req, fmt.Errorf("content-length %q: %w", truncate(value), errMalformed)
			}
			req.contentLength = n
		case asciiEqualFold(name, "transfer-encoding"):
			if !asciiEqualFold(value, "identity") {
				return req, fmt.Errorf("transfer-encoding %q: %w", truncate(value), errUnsupportedTE)
			}
		}
	}
}

// readLine returns one line without its CRLF (or bare LF). The slice is only
// valid until the next read from br.
func readLine(br *bufio.Reader, soFar int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, errHeaderTooBig
	}
	if err != nil {
		return nil, err
	}
	if soFar+len(line) > maxHeaderBytes {
		return nil, errHeaderTooBig
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// internMethod and internPath avoid an allocation per request for the
// strings the benchmark sends millions of times.
func internMethod(b []byte) string {
	switch string(b) {
	case "GET":
		return "GET"
	case "HEAD":
		return "HEAD"
	}
	return string(b)
}

func internPath(b []byte) string {
	switch string(b) {
	case "/":
		return "/"
	case "/healthz":
		return "/healthz"
	case "/name":
		return "/name"
	case "/chain":
		return "/chain"
	}
	return string(b)
}

func containsToken(v []byte, token string) bool {
	for part := range bytes.SplitSeq(v, []byte{','}) {
		if asciiEqualFold(bytes.TrimSpace(part), token) {
			return true
		}
	}
	return false
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// truncate keeps error messages short when a client sends garbage.
func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
