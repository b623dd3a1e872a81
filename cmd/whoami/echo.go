package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Echo is a raw TCP echo server. It honours half-close: after the client's
// FIN it finishes writing what it read, then sends its own FIN, which is what
// a proxy's half-close handling is tested against.
type Echo struct {
	// LameDuck is how long Serve goes on accepting after ctx ends.
	LameDuck time.Duration
	// DrainTimeout bounds how long Serve waits for open connections after
	// the lame-duck period (default 10s).
	DrainTimeout time.Duration

	lame lameDuck
}

// Serve echoes on ln until ctx ends and LameDuck has passed, then waits for
// open connections up to DrainTimeout, closes the rest and returns when all
// have finished.
func (e *Echo) Serve(ctx context.Context, ln net.Listener) error {
	stop := e.lame.arm(ctx, e.LameDuck, ln)
	defer stop()
	var (
		mu    sync.Mutex
		conns = make(map[net.Conn]struct{})
		wg    sync.WaitGroup
		err   error
	)
	for {
		c, aerr := ln.Accept()
		if aerr != nil {
			if ctx.Err() == nil {
				err = fmt.Errorf("accept on %s: %w", ln.Addr(), aerr)
			}
			break
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Go(func() {
			echoConn(c)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	timeout := e.DrainTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	select {
	case <-done:
	case <-time.After(timeout):
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		<-done
	}
	return err
}

// closeWriter is the half-close a *net.TCPConn offers.
type closeWriter interface {
	CloseWrite() error
}

func echoConn(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 32<<10)
	for {
		n, rerr := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if rerr == io.EOF {
			if cw, ok := c.(closeWriter); ok {
				cw.CloseWrite()
			}
			return
		}
		if rerr != nil {
			return
		}
	}
}
