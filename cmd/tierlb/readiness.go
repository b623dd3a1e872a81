package main

import (
	"sync"
	"sync/atomic"
)

// readiness answers /readyz: ready once every listener is bound and every
// registered condition (such as Docker discovery's first full sync) holds,
// and not ready again from the moment the drain starts.
type readiness struct {
	bound    atomic.Bool
	draining atomic.Bool

	mu     sync.Mutex
	checks []func() (bool, string)
}

// addCheck registers another condition, e.g. a discovery provider's Ready.
func (r *readiness) addCheck(check func() (bool, string)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checks = append(r.checks, check)
}

func (r *readiness) setBound()    { r.bound.Store(true) }
func (r *readiness) setDraining() { r.draining.Store(true) }

// Ready reports whether tierlb should receive traffic, and if not, why.
func (r *readiness) Ready() (bool, string) {
	if r.draining.Load() {
		return false, "draining"
	}
	if !r.bound.Load() {
		return false, "listeners not bound yet"
	}
	r.mu.Lock()
	checks := r.checks
	r.mu.Unlock()
	for _, c := range checks {
		if ok, why := c(); !ok {
			return false, why
		}
	}
	return true, ""
}
