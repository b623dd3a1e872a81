package sni

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// stdlibServerName is the reference ServerName is held to: crypto/tls's
// server handshake over the records, stopped in GetConfigForClient once
// the hello is parsed. ok is false when crypto/tls refuses the hello.
func stdlibServerName(records []byte) (name string, ok bool) {
	c := helloConn{in: records}
	cfg := &tls.Config{GetConfigForClient: func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
		name, ok = hi.ServerName, true
		return nil, errCaptured
	}}
	_ = tls.Server(&c, cfg).Handshake()
	return name, ok
}

var errCaptured = errors.New("ClientHello captured")

// helloConn is an in-memory connection that reads the records and
// swallows the alert the server sends.
type helloConn struct{ in []byte }

func (c *helloConn) Read(p []byte) (int, error) {
	if len(c.in) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.in)
	c.in = c.in[n:]
	return n, nil
}

func (c *helloConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *helloConn) Close() error                     { return nil }
func (c *helloConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *helloConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *helloConn) SetDeadline(time.Time) error      { return nil }
func (c *helloConn) SetReadDeadline(time.Time) error  { return nil }
func (c *helloConn) SetWriteDeadline(time.Time) error { return nil }

// TestStdlibReference checks the reference itself, since FuzzReader's
// agreement with it is only worth what it reads: the name of a real hello,
// over one record and two, and a refusal of bytes that are no hello.
func TestStdlibReference(t *testing.T) {
	pq := clientHello(t, &tls.Config{ServerName: "app.example.com"})
	for _, in := range [][]byte{pq, twoRecords(pq, 700)} {
		if name, ok := stdlibServerName(in); !ok || name != "app.example.com" {
			t.Errorf("reference read %q, %t; want app.example.com, true", name, ok)
		}
	}
	if name, ok := stdlibServerName([]byte("GET / HTTP/1.1\r\n\r\n")); ok {
		t.Errorf("reference accepted plain HTTP as a hello naming %q", name)
	}
}
