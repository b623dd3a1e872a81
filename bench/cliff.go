package main

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// runCliff drives 1 MiB responses over growing numbers of connections with
// the proxy running as nobody. An unprivileged user may hold at most
// fs.pipe-user-pages-soft pages (16384 = 64 MiB) of pipe buffers; past that
// every new pipe is cut to two pages and F_SETPIPE_SZ fails. A proxy that
// keeps a 1 MiB pipe per direction per connection (Go's stdlib splice) uses
// the budget up at about 32 connections; one that holds a 256 KiB pipe per
// connection for good at 128 (tierlb lends its pipes only while bytes are
// in flight, so it holds far fewer).
// The symptoms are a fall in MB/s, a rise in CPU per GB (eight times the
// splice calls), or errors if a pipe cannot be had at all.
func runCliff(ctx context.Context, e *env, r *running) (outcome, error) {
	var o outcome
	for _, n := range e.opts.CliffConns {
		if err := cliffStep(ctx, e, r, n, &o); err != nil {
			return o, err
		}
	}
	return o, nil
}

func cliffStep(ctx context.Context, e *env, r *running, n int, o *outcome) error {
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var (
		wg       sync.WaitGroup
		maxPipes int
	)
	if r.t.Proxy {
		wg.Go(func() { maxPipes = samplePipes(sampleCtx, r) })
	}
	d := max(e.opts.Duration/2, 2*time.Second)
	res, cpu, err := measuredWrk(ctx, e, r, wrkLoad{URL: "http://" + r.httpAddr + bulkPath, Conns: n, Duration: d})
	stopSampling()
	wg.Wait()
	if err != nil {
		return fmt.Errorf("%d connections: %w", n, err)
	}
	key := func(m string) string { return fmt.Sprintf("%s@%d", m, n) }
	if res.Seconds > 0 {
		o.set(key("mbps"), res.BytesRead/res.Seconds/1e6)
	}
	bad := res.SocketErrs + res.Non2xx3xx
	o.set(key("errors"), float64(bad))
	if bad > 0 {
		o.note("%d connections: %d socket errors or non-2xx answers in %d responses", n, bad, res.Requests)
	}
	if r.t.Proxy {
		o.setPerUnit(key("cpu_per_gb"), cpu, res.BytesRead, 1e9)
		o.set(key("pipes"), float64(maxPipes)/2) // two fds per pipe
	}
	return nil
}

// samplePipes returns the most pipe fds the proxy held at any sample.
func samplePipes(ctx context.Context, r *running) int {
	peak := 0
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		pipes := 0
		for _, pid := range r.pids() {
			if _, p, err := fdCount(pid); err == nil {
				pipes += p
			}
		}
		peak = max(peak, pipes)
		select {
		case <-ctx.Done():
			return peak
		case <-t.C:
		}
	}
}
