package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tierlb/tierlb/backends"
)

// Passive ejects backends whose dials keep failing. It has the method set of
// proxy.DialObserver, so cmd/ hands it to the data path; both methods are
// safe for concurrent use and cost one lock-free map load on success.
//
// A nil *Passive ignores every call.
type Passive struct {
	cfg     atomic.Pointer[PassiveConfig]
	log     *slog.Logger
	onEject func(*backends.Backend)

	// fails maps *backends.Backend to its *failCount of consecutive
	// failed dials. Entries are added on a backend's first failure and
	// removed by Forget, or by the Monitor's reconcile, when it leaves its
	// set.
	fails sync.Map
}

// Passive has proxy.DialObserver's method set; the interface is spelled out
// here because health does not import the data path.
var _ interface {
	DialFailed(b *backends.Backend, err error)
	DialSucceeded(b *backends.Backend)
} = (*Passive)(nil)

// PassiveOptions are a Passive's collaborators; the zero value works.
type PassiveOptions struct {
	// Logger receives one line per ejection; nil discards.
	Logger *slog.Logger
	// OnEject runs after each ejection, outside any lock; a Monitor uses it
	// to probe the backend at once (CoreDNS: passive failures trigger active
	// checks), so that active checks have a fresh verdict when the ejection
	// ends.
	OnEject func(b *backends.Backend)
}

// NewPassive returns a passive checker; cfg.MaxFails 0 disables it.
func NewPassive(cfg PassiveConfig, opts PassiveOptions) *Passive {
	p := &Passive{log: opts.Logger, onEject: opts.OnEject}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.SetConfig(cfg)
	return p
}

// SetConfig changes max_fails and fail_timeout for the dials that follow.
func (p *Passive) SetConfig(cfg PassiveConfig) {
	if p == nil {
		return
	}
	if cfg.FailTimeout <= 0 {
		cfg.FailTimeout = DefaultFailTimeout
	}
	p.cfg.Store(&cfg)
}

// DialSucceeded resets the backend's count of consecutive failures.
func (p *Passive) DialSucceeded(b *backends.Backend) {
	if p == nil {
		return
	}
	if v, ok := p.fails.Load(b); ok {
		if c := &v.(*failCount).n; c.Load() != 0 {
			c.Store(0)
		}
	}
}

// DialFailed counts a failed dial and ejects the backend for fail_timeout
// when the count reaches max_fails. A dial abandoned because the client went
// away (context canceled) says nothing about the backend and is ignored.
func (p *Passive) DialFailed(b *backends.Backend, err error) {
	if p == nil {
		return
	}
	cfg := p.cfg.Load()
	if cfg.MaxFails <= 0 || errors.Is(err, context.Canceled) {
		return
	}
	v, ok := p.fails.Load(b)
	if !ok {
		v, _ = p.fails.LoadOrStore(b, new(failCount))
	}
	fc := v.(*failCount)
	n := fc.n.Add(1)
	if int(n) < cfg.MaxFails || !fc.n.CompareAndSwap(n, 0) {
		return
	}
	// Failures go on counting while one caller ejects, so another may reach
	// the threshold too: checking and ejecting under one lock makes one
	// outage one ejection. Only this rare path takes it.
	fc.eject.Lock()
	defer fc.eject.Unlock()
	if b.Ejected() {
		return // dials that were in flight when it was ejected
	}
	reason := fmt.Sprintf("passive: %d consecutive dial failures, last: %v", n, err)
	until := time.Now().Add(cfg.FailTimeout)
	b.Eject(until, reason)
	p.log.Info("backend ejected", "service", b.Service(), "backend", b.ID(),
		"address", b.Address(), "reason", reason, "for", cfg.FailTimeout)
	if p.onEject != nil {
		p.onEject(b)
	}
}

// failCount is one backend's run of consecutive dial failures.
type failCount struct {
	n     atomic.Int32
	eject sync.Mutex
}

// Forget drops the failure count of a backend that left its set.
func (p *Passive) Forget(b *backends.Backend) {
	if p == nil {
		return
	}
	p.fails.Delete(b)
}

// forgetAllBut drops the failure counts of the backends not in members.
func (p *Passive) forgetAllBut(members map[*backends.Backend]bool) {
	if p == nil {
		return
	}
	p.fails.Range(func(k, _ any) bool {
		if !members[k.(*backends.Backend)] {
			p.fails.Delete(k)
		}
		return true
	})
}

// failures returns the current count, for tests and status pages.
func (p *Passive) failures(b *backends.Backend) int {
	if v, ok := p.fails.Load(b); ok {
		return int(v.(*failCount).n.Load())
	}
	return 0
}
