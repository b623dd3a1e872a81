package main

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tierlb/tierlb/config"
)

// readiness answers /readyz. tierlb is ready when it can serve: every
// listener is bound and every service can route, through static backends
// or through a discovery that has synced at least once. It is not ready
// again from the moment the drain starts.
//
// Discovery that has not synced yet holds readiness only where something
// waits for it: a service whose backends all come from Docker, or a config
// with no services at all (label-declared ones are all there will be). An
// engine that becomes unreachable afterwards does not take a working load
// balancer out of rotation: the last known backends keep serving, and the
// outage is a line of the 200 body (and tierlb_discovery_engine_up 0).
type readiness struct {
	bound    atomic.Bool
	draining atomic.Bool
	waitSync atomic.Bool // the config in force needs a first sync to route

	mu     sync.Mutex
	synced func() (bool, string) // nil without discovery
	engine func() string         // "" while the engine answers
}

// setDiscovery registers the discovery provider's first-sync state and the
// engine's current state.
func (r *readiness) setDiscovery(synced func() (bool, string), engine func() string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.synced, r.engine = synced, engine
}

// setConfig notes whether the config in force routes anything only
// through discovery.
func (r *readiness) setConfig(cfg *config.Config) {
	wait := len(cfg.Services) == 0
	for _, s := range cfg.Services {
		if s.Backends.Docker != nil && len(s.Backends.Static) == 0 {
			wait = true
		}
	}
	r.waitSync.Store(wait)
}

func (r *readiness) setBound()    { r.bound.Store(true) }
func (r *readiness) setDraining() { r.draining.Store(true) }

// Ready reports whether tierlb should receive traffic. When not, why is
// the reason; when ready, why notes what is degraded but does not stop
// it serving ("" when nothing is).
func (r *readiness) Ready() (ok bool, why string) {
	if r.draining.Load() {
		return false, "draining"
	}
	if !r.bound.Load() {
		return false, "listeners not bound yet"
	}
	r.mu.Lock()
	synced, engine := r.synced, r.engine
	r.mu.Unlock()
	if synced == nil {
		return true, ""
	}
	if ok, why := synced(); !ok {
		if r.waitSync.Load() {
			return false, why
		}
		return true, "static backends serve; docker discovery: " + why
	}
	var notes []string
	if engine != nil {
		if s := engine(); s != "" {
			notes = append(notes, s+"; serving the last known backends")
		}
	}
	return true, strings.Join(notes, "; ")
}
