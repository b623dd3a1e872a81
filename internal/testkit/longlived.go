package testkit

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// LongLived keeps n connections open to an echo service, each sending
// 1 KiB every interval and wanting it back whole, for a lifetime spread
// over [lifetime/2, 3·lifetime/2), then closing gracefully (its FIN, then
// the server's) and opening the next. A connection that fails after it
// carried bytes is cut; one that never carries any is refused; either is
// retried 100 ms later. The loop ends at Stop, the end of the test or
// after within, and opens at most one connection per 100 ms per slot.
type LongLived struct {
	open, done, cut, refused atomic.Int64

	mu      sync.Mutex
	lastErr error

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// StartLongLived starts n long-lived connections to addr.
func StartLongLived(t testing.TB, addr string, n int, lifetime, interval, within time.Duration) *LongLived {
	t.Helper()
	if n <= 0 || lifetime <= 0 || interval <= 0 || within <= 0 {
		t.Fatalf("long-lived connections: n %d, lifetime %v, interval %v, within %v must all be positive", n, lifetime, interval, within)
	}
	ctx, cancel := context.WithTimeout(context.Background(), within)
	l := &LongLived{cancel: cancel}
	for range n {
		l.wg.Go(func() {
			for ctx.Err() == nil {
				echoed, err := l.one(ctx, addr, lifetime/2+rand.N(lifetime), interval)
				switch {
				case err == nil:
					l.done.Add(1)
					continue
				case echoed == 0:
					l.refused.Add(1)
				default:
					l.cut.Add(1)
					l.mu.Lock()
					l.lastErr = err
					l.mu.Unlock()
				}
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
			}
		})
	}
	t.Cleanup(l.Stop)
	return l
}

// one runs one connection and returns how many echoes it got back.
func (l *LongLived) one(ctx context.Context, addr string, life, interval time.Duration) (echoed int, err error) {
	c, err := net.DialTimeout("tcp", addr, 20*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	l.open.Add(1)
	defer l.open.Add(-1)
	msg := bytes.Repeat([]byte("x"), 1024)
	got := make([]byte, len(msg))
	end := time.Now().Add(life)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return echoed, nil
		case <-tick.C:
		}
		// Generous: a loaded machine may stall for seconds; a lost
		// connection shows at once.
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := c.Write(msg); err != nil {
			return echoed, err
		}
		if _, err := io.ReadFull(c, got); err != nil {
			return echoed, err
		}
		if !bytes.Equal(got, msg) {
			return echoed, fmt.Errorf("echo: the %d bytes came back changed", len(got))
		}
		echoed++
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return echoed, err
	}
	if n, err := c.Read(got); err != io.EOF {
		return echoed, fmt.Errorf("after our FIN: %d bytes, %v (want EOF)", n, err)
	}
	return echoed, nil
}

// Open is the number of connections open now.
func (l *LongLived) Open() int64 { return l.open.Load() }

// Counts returns the connections that ended as their client meant, were
// cut after carrying bytes, and were refused (never carried any).
func (l *LongLived) Counts() (done, cut, refused int64) {
	return l.done.Load(), l.cut.Load(), l.refused.Load()
}

// LastError is the last cut connection's error.
func (l *LongLived) LastError() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastErr
}

// Stop ends the loop: open connections return at their next tick, counted
// as done.
func (l *LongLived) Stop() {
	l.cancel()
	l.wg.Wait()
}
