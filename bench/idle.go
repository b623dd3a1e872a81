package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// idleFirst is the reference count of idle connections.
const idleFirst = 3000

// settleTime lets a proxy's memory settle after a burst of accepts (a Go
// proxy frees goroutine stacks and runs GC lazily) before it is read.
const settleTime = time.Second

// usage is the proxy's footprint at one moment.
type usage struct {
	RSSKB, SlabKB int64
	FDs, Pipes    int
}

func measureUsage(r *running) usage {
	var u usage
	for _, pid := range r.pids() {
		if kb, err := rssKB(pid); err == nil {
			u.RSSKB += kb
		}
		if n, p, err := fdCount(pid); err == nil {
			u.FDs += n
			u.Pipes += p
		}
	}
	u.SlabKB, _ = slabKB()
	return u
}

// idleConns holds client connections that each did one request through the
// proxy (so both legs are established and have carried bytes) and then wait.
type idleConns struct {
	addr  string
	mu    sync.Mutex
	conns []net.Conn
}

// open adds up to n connections and returns how many are held in all,
// stopping at the first failure: past the
// proxy's fd limit, accepts stall or fail and every further attempt would
// only wait for its timeout.
func (h *idleConns) open(ctx context.Context, n int) (opened int, firstErr error) {
	var (
		next    atomic.Int64
		stopped atomic.Bool
		errOnce sync.Once
		wg      sync.WaitGroup
	)
	for range 32 {
		wg.Go(func() {
			for !stopped.Load() && ctx.Err() == nil && next.Add(1) <= int64(n) {
				c, err := dialAndAsk(h.addr)
				if err != nil {
					stopped.Store(true)
					errOnce.Do(func() { firstErr = err })
					return
				}
				h.mu.Lock()
				h.conns = append(h.conns, c)
				h.mu.Unlock()
			}
		})
	}
	wg.Wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns), firstErr
}

// dialAndAsk opens a connection and completes one GET /healthz on it.
func dialAndAsk(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	if err := ask(c); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func ask(c net.Conn) error {
	c.SetDeadline(time.Now().Add(3 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n"); err != nil {
		return fmt.Errorf("send request: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(c, 256), nil)
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		return fmt.Errorf("response %d: %v", resp.StatusCode, err)
	}
	return nil
}

// alive asks once more on every held connection and counts the answers:
// a proxy that silently dropped connections does not get credit for them.
func (h *idleConns) alive() int {
	h.mu.Lock()
	conns := h.conns
	h.mu.Unlock()
	var ok atomic.Int64
	var wg sync.WaitGroup
	idx := make(chan net.Conn)
	for range 32 {
		wg.Go(func() {
			for c := range idx {
				if ask(c) == nil {
					ok.Add(1)
				}
			}
		})
	}
	for _, c := range conns {
		idx <- c
	}
	close(idx)
	wg.Wait()
	return int(ok.Load())
}

func (h *idleConns) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		c.Close()
	}
	h.conns = nil
}

func runIdle(ctx context.Context, e *env, r *running) (outcome, error) {
	var o outcome
	// Warm the proxy up so one-time allocations are not charged to the
	// connections.
	warm, err := dialAndAsk(r.httpAddr)
	if err != nil {
		return o, fmt.Errorf("idle warm-up: %w", err)
	}
	warm.Close()
	time.Sleep(settleTime)
	base := measureUsage(r)

	h := &idleConns{addr: r.httpAddr}
	defer h.closeAll()
	n, err := h.open(ctx, idleFirst)
	if n < idleFirst {
		return o, fmt.Errorf("idle: held only %d of %d connections: %w", n, idleFirst, err)
	}
	time.Sleep(settleTime)
	perConn(&o, "", measureUsage(r), base, n)

	n, err = h.open(ctx, e.opts.IdleMax-n)
	if err != nil {
		o.note("idle: stopped opening at %d connections: %v", n, err)
	}
	time.Sleep(settleTime)
	at := measureUsage(r)
	held := h.alive()
	if err := r.alive(); err != nil {
		return o, err
	}
	o.set("max_conns", float64(held))
	if held < n {
		o.note("idle: %d of %d connections no longer answered", n-held, n)
	}
	perConn(&o, "max_", at, base, n)
	return o, nil
}

// perConn records the footprint growth divided by the connection count.
func perConn(o *outcome, prefix string, now, base usage, n int) {
	f := float64(n)
	o.set(prefix+"rss_kb_per_conn", float64(now.RSSKB-base.RSSKB)/f)
	o.set(prefix+"fds_per_conn", float64(now.FDs-base.FDs)/f)
	o.set(prefix+"pipes_per_conn", float64(now.Pipes-base.Pipes)/f)
	o.set(prefix+"slab_kb_per_conn", float64(now.SlabKB-base.SlabKB)/f)
}
