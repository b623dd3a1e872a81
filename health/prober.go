package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/tierlb/tierlb/backends"
)

// pendingReason is the verdict of a new backend until its first probe, so
// that a replica is added to rotation only once it has passed a check. Sets
// made with HoldUntilChecked start their backends with it.
const pendingReason = backends.PendingCheck

// jitterFraction spreads each wait over interval ±15%, so backends whose
// probers started together drift apart instead of probing in lock step.
const jitterFraction = 0.15

// prober checks one backend on the process's check loop, which runs one
// probe of it at a time.
type prober struct {
	b       *backends.Backend
	cfg     *Config // with defaults; shared with other probers, read only
	checker Checker
	wire    *wireProbe // tcp and http: the probe the loop runs itself; nil for other checkers
	log     *slog.Logger
	series  checkSeries
	rand    func() float64  // in [0, 1)
	aside   *sync.WaitGroup // the monitor's goroutine probes in flight; nil counts none

	// Owned by the loop.
	index   int       // in the loop's schedule; -1 when not queued
	due     time.Time // the next probe, or the timeout of the one in flight
	running bool      // a probe is in flight
	again   bool      // an immediate probe was asked for while one was in flight
	removed bool
	cancel  context.CancelFunc // of a goroutine probe in flight

	// The verdict's state, owned by the loop too.
	known       bool // a verdict exists (ours or a previous prober's)
	spread      bool // the next wait is a random part of the interval
	joining     bool // new and never passed: probe on a short backoff, up at the first pass
	backoff     time.Duration
	up          bool
	rises, fall int // consecutive passes while down, failures while up
}

// newProber prepares the prober of b; the loop starts it.
func newProber(b *backends.Backend, cfg *Config, checker Checker, log *slog.Logger, series checkSeries, rand func() float64) *prober {
	p := &prober{b: b, cfg: cfg, checker: checker, log: log, series: series, rand: rand, index: -1}
	// Only the checkers whose whole probe is a wire probe run on the loop
	// itself; a wrapped or custom checker keeps its own Check.
	switch c := checker.(type) {
	case TCPChecker:
		p.wire, _ = newWireProbe(b.Address(), b.Address(), nil)
	case *HTTPChecker:
		p.wire, _ = newWireProbe(b.Address(), b.Address(), c)
	}
	return p
}

// firstDelay decides the initial state. A backend without a verdict is new:
// unless it already carries connections, it is held out of rotation
// (pendingReason) and probed at once, and that first probe alone decides
// its state. A backend that has a verdict (a reload restarted its prober)
// keeps it and is probed after a random part of the interval, so restarted
// probers do not all fire together.
func (p *prober) firstDelay() time.Duration {
	v, _ := p.b.Health()
	if v != nil && v.Reason != pendingReason {
		p.known, p.up = true, v.OK
		return time.Duration(p.rand() * float64(p.cfg.Interval))
	}
	if v == nil && p.b.Active() == 0 {
		p.b.SetHealth(false, pendingReason)
	}
	p.spread, p.joining = true, true
	return 0
}

// nextDelay is the wait after a probe: the interval with jitter, except
// after the very first probe, which is followed by a uniformly random wait
// so that backends added together spread over the interval.
func (p *prober) nextDelay() time.Duration {
	if p.joining {
		// A replica that is still starting is probed again soon (25 ms,
		// doubling up to the interval) rather than a whole interval later,
		// so it joins within milliseconds of listening.
		if p.backoff == 0 {
			p.backoff = joinBackoff
		} else if p.backoff *= 2; p.backoff > p.cfg.Interval {
			p.backoff = p.cfg.Interval
		}
		return p.backoff
	}
	if p.spread {
		// At least a tenth of the interval, so that the second probe is
		// never fired straight after the first.
		p.spread = false
		return time.Duration((0.1 + 0.9*p.rand()) * float64(p.cfg.Interval))
	}
	return jitter(p.cfg.Interval, p.rand())
}

// joinBackoff is the first wait after a failed probe of a joining backend.
const joinBackoff = 25 * time.Millisecond

// jitter maps r in [0, 1) onto interval ±jitterFraction.
func jitter(interval time.Duration, r float64) time.Duration {
	return time.Duration(float64(interval) * (1 + jitterFraction*(2*r-1)))
}

// observe applies one probe result: rise and fall counting, the state change
// and its log line.
func (p *prober) observe(err error) {
	if err != nil && backends.LocalDialError(err) >= 0 {
		// The probe could not even be made (tierlb is out of descriptors,
		// memory or ports): no verdict on the backend either way.
		p.log.Debug("health probe not made: out of local resources", "service", p.b.Service(), "backend", p.b.ID(), "err", err)
		return
	}
	ok := err == nil
	reason := "ok"
	if !ok {
		reason = p.reason(err)
	}
	p.b.RecordCheck(ok, reason)
	p.series.count(ok)
	switch {
	case !p.known:
		p.known = true
		if ok {
			p.joining = false
			p.set(true, "passed its first check")
		} else {
			p.set(false, reason)
		}
	case ok && p.joining:
		// A new backend that never passed is starting, not recovering:
		// rise guards against flapping, which needs a first up to exist.
		p.joining = false
		p.set(true, "passed its first check")
	case ok:
		p.fall = 0
		if !p.up {
			if p.rises++; p.rises >= p.cfg.Rise {
				p.set(true, fmt.Sprintf("passed %d consecutive checks", p.rises))
			}
		}
	default:
		p.rises = 0
		if p.up {
			if p.fall++; p.fall >= p.cfg.Fall {
				p.set(false, fmt.Sprintf("failed %d consecutive checks, last: %s", p.fall, reason))
			}
		}
	}
}

// set records a state decision on the backend and logs it once.
func (p *prober) set(up bool, reason string) {
	p.up, p.rises, p.fall = up, 0, 0
	p.b.SetHealth(up, reason)
	msg := "backend down"
	if up {
		msg = "backend up"
	}
	p.log.Info(msg, "service", p.b.Service(), "backend", p.b.ID(), "address", p.b.Address(),
		"check", p.cfg.Type, "reason", reason)
}

// reason turns a probe error into the text operators read, naming timeouts
// as such whatever layer reported them.
func (p *prober) reason(err error) string {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Sprintf("timed out after %v: %v", p.cfg.Timeout, err)
	}
	return err.Error()
}
