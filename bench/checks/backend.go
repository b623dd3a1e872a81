package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"
)

// backendServer answers every check on one port: a single listener on
// 0.0.0.0:PORT serves all the 127.10.x.y backend addresses (Linux routes the
// whole of 127.0.0.0/8 to lo), so 10,000 backends cost the bench one socket
// rather than 10,000. Only 127.10.x.y addresses are ever dialled.
//
// A connection that sends a request (an http check) gets "200 OK" and is
// closed once the checker closes; one that sends nothing is held until the
// checker closes or resets it. Accepted connections are counted; checks
// are counted from SYNs (synCounter), since a tcp check that resets before
// the handshake's last ACK is never accepted.
type backendServer struct {
	ln       *net.TCPListener
	accepted atomic.Int64
}

// bucketWidth is the resolution of the spread measure.
const bucketWidth = 100 * time.Millisecond

func startBackendServer() (*backendServer, error) {
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4zero})
	if err != nil {
		return nil, err
	}
	s := &backendServer{ln: ln}
	go s.serve()
	return s, nil
}

func (s *backendServer) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

func (s *backendServer) close() error { return s.ln.Close() }

func (s *backendServer) serve() {
	for {
		c, err := s.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // out of descriptors: let some close
			continue
		}
		s.accepted.Add(1)
		go s.answer(c)
	}
}

var (
	httpEnd   = []byte("\r\n\r\n")
	httpReply = []byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
)

func (s *backendServer) answer(c *net.TCPConn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	var buf [1024]byte
	n := 0
	for n < len(buf) {
		m, err := c.Read(buf[n:])
		n += m
		if bytes.Contains(buf[:n], httpEnd) {
			c.Write(httpReply)
			// Wait for the checker to close first, as a server that keeps
			// its side open until the client is done would.
			c.Read(buf[:])
			return
		}
		if err != nil {
			return
		}
	}
}

// backendAddr is the i-th backend's address: 127.10.0.1 and up, 250 per
// third octet, all on the one port.
func backendAddr(i, port int) string {
	return fmt.Sprintf("127.10.%d.%d:%d", i/250, i%250+1, port)
}
