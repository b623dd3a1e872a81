package docker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/moby/moby/client"
)

// Run discovers until ctx ends: subscribe to events, relist, follow the
// stream, relist every ResyncInterval. When the engine is unreachable or the
// stream breaks it backs off (exponentially, capped), resubscribes and
// relists; the sink keeps the last known backends meanwhile. It returns nil
// when ctx is canceled.
func (p *Provider) Run(ctx context.Context) error {
	delay := p.backoffMin
	for {
		synced, err := p.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		p.metrics.failed()
		if synced {
			delay = p.backoffMin // the engine was fine for a while: retry quickly
		}
		wait := jitter(delay)
		if ok, _ := p.Ready(); ok {
			p.log.Warn("docker discovery interrupted; serving the last known backends", "err", err, "retry_in", wait)
		} else {
			p.log.Warn("docker discovery not ready", "err", err, "retry_in", wait)
			p.setReady(false, fmt.Sprintf("docker engine at %s: %v (retrying in %s)", p.host, err, wait.Round(time.Millisecond)))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		delay = min(delay*2, p.backoffMax)
	}
}

// jitter spreads retries by ±20% so that many proxies do not hit a
// restarted engine in step.
func jitter(d time.Duration) time.Duration {
	return d - d/5 + rand.N(d*2/5+1)
}

// session is one subscription: it subscribes first and lists second, so no
// change falls between the two, then follows the stream. synced says whether
// the relist succeeded before the session ended.
func (p *Provider) session(ctx context.Context) (synced bool, err error) {
	q := newQueue()
	defer func() { p.lastEvent = max(p.lastEvent, q.lastTime()) }() // runs after wg.Wait: the drainer is done
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // the drainer is gone when session returns
	defer cancel()

	opts := client.EventsListOptions{Filters: eventFilters()}
	if p.lastEvent > 0 {
		// The engine replays what it still holds since then (its last 256
		// events), in order, after the relist below: a suffix of the
		// history applied to a fresher state ends where the engine is.
		opts.Since = fmt.Sprintf("%d.%09d", p.lastEvent/1e9, p.lastEvent%1e9)
	}
	stream := p.cli.Events(ctx, opts)
	wg.Go(func() { drainEvents(ctx, stream, q) })

	if err := p.relist(ctx); err != nil {
		return false, err
	}
	p.setReady(true, "")
	resync := time.NewTicker(p.cfg.resyncInterval())
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case <-resync.C:
			if err := p.relist(ctx); err != nil {
				return true, fmt.Errorf("resync: %w", err)
			}
		case <-p.reload:
			if err := p.relist(ctx); err != nil {
				return true, fmt.Errorf("relist after reload: %w", err)
			}
		case <-q.notify:
			if p.coalesce > 0 && !q.isUrgent() { // let the rest of a burst arrive: one update for all
				t := time.NewTimer(p.coalesce)
				select {
				case <-ctx.Done():
					t.Stop()
					return true, ctx.Err()
				case <-t.C:
				}
			}
			msgs, streamErr := q.take()
			if len(msgs) > 0 {
				if err := p.applyEvents(ctx, msgs); err != nil {
					return true, fmt.Errorf("apply docker events: %w", err)
				}
			}
			if streamErr != nil {
				if errors.Is(streamErr, context.Canceled) && ctx.Err() != nil {
					return true, ctx.Err()
				}
				return true, fmt.Errorf("docker event stream: %w", streamErr)
			}
		}
	}
}
