package fakeengine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Loopback is the TCP endpoint of every container: one socket bound to
// 0.0.0.0:port, which Linux reaches at every address of 127.0.0.0/8 (the
// whole block is local on lo), so 10,000 containers need one socket, not
// 10,000. A connection from anywhere but loopback is closed unanswered.
// Each accepted connection is greeted with the address it was dialed at
// ("127.1.0.7:41000\n"), so a client learns which container it reached,
// then held until the client closes it (or for a minute at most).
type Loopback struct {
	ln net.Listener
	wg sync.WaitGroup

	mu       sync.Mutex
	accepted int
	conns    map[net.Conn]struct{}
}

// holdFor bounds how long a greeted connection stays open.
const holdFor = time.Minute

// ListenLoopback binds the endpoint on port (0 picks one).
func ListenLoopback(port int) (*Loopback, error) {
	ln, err := net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", port))
	if err != nil {
		return nil, fmt.Errorf("fake engine loopback endpoint: %w", err)
	}
	return &Loopback{ln: ln, conns: map[net.Conn]struct{}{}}, nil
}

// Port is the port every container address answers on.
func (l *Loopback) Port() int { return l.ln.Addr().(*net.TCPAddr).Port }

// Accepted counts the connections greeted so far.
func (l *Loopback) Accepted() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.accepted
}

// Serve accepts until ctx ends, then closes the socket and every open
// connection and waits for their goroutines.
func (l *Loopback) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		l.ln.Close()
		l.mu.Lock()
		for c := range l.conns {
			c.Close()
		}
		l.mu.Unlock()
	})
	defer stop()
	defer l.wg.Wait()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("fake engine loopback endpoint: %w", err)
		}
		local, remote := c.LocalAddr().(*net.TCPAddr), c.RemoteAddr().(*net.TCPAddr)
		if !local.IP.IsLoopback() || !remote.IP.IsLoopback() {
			c.Close()
			continue
		}
		l.mu.Lock()
		l.accepted++
		l.conns[c] = struct{}{}
		l.mu.Unlock()
		l.wg.Go(func() { l.greet(c) })
	}
}

// greet says which address the client reached and waits for it to leave.
func (l *Loopback) greet(c net.Conn) {
	defer func() {
		l.mu.Lock()
		delete(l.conns, c)
		l.mu.Unlock()
		c.Close()
	}()
	_ = c.SetDeadline(time.Now().Add(holdFor))
	if _, err := io.WriteString(c, c.LocalAddr().String()+"\n"); err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, c)
}
