package faults

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// load is a bounded client load: each worker opens a connection, sends a
// line, wants it echoed whole, and closes; failures are counted.
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	lastErr    error
	cancel     context.CancelFunc
	wg         sync.WaitGroup
}

// startLoad runs workers against addr for at most maxDur and maxConns
// connections, or until stop.
func startLoad(t *testing.T, addr string, workers int, maxDur time.Duration, maxConns int64) *load {
	ctx, cancel := context.WithTimeout(context.Background(), maxDur)
	l := &load{cancel: cancel}
	var issued atomic.Int64
	for w := range workers {
		l.wg.Go(func() {
			msg := fmt.Appendf(nil, "worker %d says hello\n", w)
			for ctx.Err() == nil && issued.Add(1) <= maxConns {
				if err := exchange(addr, msg); err != nil {
					l.failed.Add(1)
					l.mu.Lock()
					l.lastErr = err
					l.mu.Unlock()
					continue
				}
				l.ok.Add(1)
			}
		})
	}
	t.Cleanup(l.stop)
	return l
}

func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
}

func (l *load) err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastErr
}

// exchange is one connection: msg out, the same bytes back, close. The
// deadline only ends a hung connection; a lost one fails at once.
func exchange(addr string, msg []byte) error {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echo: got %q, want %q", got, msg)
	}
	return nil
}
