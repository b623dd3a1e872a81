package testkit

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A client that closes first holds each of its local ports in TIME_WAIT for
// 60 s, and Linux's default range has 28,232 of them: a loop that opens
// connections as fast as the machine allows runs out of ports (connect:
// cannot assign requested address) on a fast enough machine, whatever the
// code under test does. So a test's load loop is bounded in count, time and
// rate, with the rate chosen from the count.
const (
	// PortBudget is how many connections one load loop may have in
	// TIME_WAIT at once: under half the default range, which leaves the
	// rest to tierlb's own dials and to the tests running beside it.
	PortBudget = 12_000
	// SustainedRate (connections/s) keeps any 60 s of a loop within
	// PortBudget, however long it runs.
	SustainedRate = PortBudget / 60
	// ShortRate (connections/s) is for a loop of at most PortBudget
	// connections in all, which cannot exhaust the range at any rate; it
	// is bounded all the same so that a fast machine runs the same test.
	ShortRate = 2_000
)

// MaxRate is the highest rate a load loop of count connections may run at.
func MaxRate(count int64) float64 {
	if count <= PortBudget {
		return ShortRate
	}
	return SustainedRate
}

// Pace bounds a load loop: at most Count connections, within Within, at
// most Rate per second in all, whatever the number of workers.
type Pace struct {
	Rate   float64
	Count  int64
	Within time.Duration
}

// Pacer hands out a load loop's connection slots, shared by its workers.
// A worker that falls behind does not earn a burst later: the next slot is
// one interval after the later of the last slot and now.
type Pacer struct {
	interval time.Duration
	deadline time.Time

	mu     sync.Mutex
	next   time.Time
	issued int64
	count  int64
}

// NewPacer fails the test if the pace could exhaust the local ports
// (Rate above MaxRate(Count)) or is missing a bound.
func NewPacer(t testing.TB, p Pace) *Pacer {
	t.Helper()
	if p.Rate <= 0 || p.Count <= 0 || p.Within <= 0 {
		t.Fatalf("load pace %+v: rate, count and time must all be positive", p)
		return nil
	}
	if p.Rate > MaxRate(p.Count) {
		t.Fatalf("load pace %+v: %.0f connections/s for %d connections could exhaust the local ports; at most %.0f/s",
			p, p.Rate, p.Count, MaxRate(p.Count))
		return nil
	}
	now := time.Now()
	return &Pacer{
		interval: time.Duration(float64(time.Second) / p.Rate),
		deadline: now.Add(p.Within),
		next:     now,
		count:    p.Count,
	}
}

// Next waits for the next slot and reports whether the loop may open one
// more connection: false once the count or the time is spent or ctx ends.
func (p *Pacer) Next(ctx context.Context) bool {
	p.mu.Lock()
	now := time.Now()
	at := p.next
	if at.Before(now) {
		at = now
	}
	if p.issued >= p.count || !at.Before(p.deadline) {
		p.mu.Unlock()
		return false
	}
	p.issued++
	p.next = at.Add(p.interval)
	p.mu.Unlock()
	if wait := time.Until(at); wait > 0 {
		timer := time.NewTimer(wait)
		defer timer.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-timer.C:
		}
	}
	return ctx.Err() == nil
}

// Load is a load loop: workers each call conn once per slot of a Pacer,
// and it counts what succeeded and what failed.
type Load struct {
	ok, failed atomic.Int64

	mu   sync.Mutex
	errs []string // the last few failures, with their times

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// StartLoad runs workers calling conn (one new connection each call) at
// the given pace until Stop, the end of the test, or the pace's bounds.
// conn must not call t.Fatal: it runs on the workers' goroutines.
func StartLoad(t testing.TB, workers int, pace Pace, conn func(ctx context.Context) error) *Load {
	t.Helper()
	p := NewPacer(t, pace)
	ctx, cancel := context.WithCancel(context.Background())
	l := &Load{cancel: cancel}
	for range workers {
		l.wg.Go(func() {
			for p.Next(ctx) {
				if err := conn(ctx); err != nil {
					l.fail(err)
					continue
				}
				l.ok.Add(1)
			}
		})
	}
	t.Cleanup(l.Stop)
	return l
}

func (l *Load) fail(err error) {
	l.failed.Add(1)
	l.mu.Lock()
	l.errs = append(l.errs[max(0, len(l.errs)-4):], fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), err))
	l.mu.Unlock()
}

// Stop ends the loop and waits for the connections in flight.
func (l *Load) Stop() {
	l.cancel()
	l.wg.Wait()
}

// Wait waits until the pace's count or time is spent.
func (l *Load) Wait() { l.wg.Wait() }

// Counts returns the connections that succeeded and failed so far.
func (l *Load) Counts() (ok, failed int64) { return l.ok.Load(), l.failed.Load() }

// LastErrors returns the last few failures, oldest first.
func (l *Load) LastErrors() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.errs, "; ")
}
