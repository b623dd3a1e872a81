package docker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
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
// the relist succeeded before the session ended. In Swarm mode tasks are
// also relisted every swarm_poll (and every hotPoll for services that just
// changed), and a broken stream leaves the session polling alone while it
// resubscribes with backoff.
func (p *Provider) session(ctx context.Context) (synced bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // the drainers are gone when session returns
	defer cancel()

	// Swarm's event types are asked for unless Swarm is off by config, so
	// that the subscription can come before the engine says what it is.
	subscribe := func() *queue {
		q := newQueue()
		opts := client.EventsListOptions{Filters: eventFilters(p.cfg.Swarm != "false")}
		if p.lastEvent > 0 {
			// The engine replays what it still holds since then (its last
			// 256 events), in order, after the relist below: a suffix of
			// the history applied to a fresher state ends where the
			// engine is.
			opts.Since = fmt.Sprintf("%d.%09d", p.lastEvent/1e9, p.lastEvent%1e9)
		}
		stream := p.cli.Events(ctx, opts)
		wg.Go(func() { drainEvents(ctx, stream, q) })
		return q
	}
	q := subscribe()
	swarmOn, err := p.detectSwarm(ctx)
	if err != nil {
		return false, err
	}
	if err := p.relist(ctx); err != nil {
		return false, err
	}
	p.setReady(true, "")
	resync := time.NewTicker(p.cfg.resyncInterval())
	defer resync.Stop()

	var poll, hot <-chan time.Time
	if swarmOn {
		pt := time.NewTicker(p.cfg.swarmPoll())
		defer pt.Stop()
		ht := time.NewTicker(hotPoll)
		defer ht.Stop()
		poll, hot = pt.C, ht.C
	}
	notify := q.notify
	var resubscribe <-chan time.Time // set while the stream is down in Swarm mode
	delay := p.backoffMin
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
		case <-poll:
			if err := p.pollTasks(ctx, slices.Collect(maps.Keys(p.sw.services)), true); err != nil {
				return true, fmt.Errorf("swarm task poll: %w", err)
			}
			p.publishSwarm()
		case now := <-hot:
			if ids := p.hotServices(now); len(ids) > 0 {
				if err := p.pollTasks(ctx, ids, false); err != nil {
					return true, fmt.Errorf("swarm task poll: %w", err)
				}
				p.publishSwarm()
			}
		case <-resubscribe:
			resubscribe = nil
			q = subscribe()
			notify = q.notify
			if err := p.relist(ctx); err != nil { // events were missed meanwhile
				return true, fmt.Errorf("relist after resubscribing: %w", err)
			}
		case <-notify:
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
			for _, m := range msgs {
				p.lastEvent = max(p.lastEvent, m.TimeNano)
			}
			if len(msgs) > 0 {
				delay = p.backoffMin
				if err := p.applyEvents(ctx, msgs); err != nil {
					return true, fmt.Errorf("apply docker events: %w", err)
				}
			}
			if streamErr != nil {
				if errors.Is(streamErr, context.Canceled) && ctx.Err() != nil {
					return true, ctx.Err()
				}
				if !swarmOn {
					return true, fmt.Errorf("docker event stream: %w", streamErr)
				}
				// The API may well answer while the stream does not (a
				// proxy cutting long requests): keep polling the tasks.
				wait := jitter(delay)
				delay = min(delay*2, p.backoffMax)
				p.metrics.failed()
				p.log.Warn("docker event stream broken; following Swarm tasks by polling alone",
					"err", streamErr, "poll", p.cfg.swarmPoll(), "resubscribe_in", wait)
				notify = nil
				resubscribe = time.After(wait)
			}
		}
	}
}
