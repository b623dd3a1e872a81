package health

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"

	"github.com/tierlb/tierlb/backends"
)

// Options are a Monitor's collaborators; the zero value works for every
// check type but docker.
type Options struct {
	// Logger receives state changes; nil discards.
	Logger *slog.Logger
	// Metrics counts probes; nil records nothing.
	Metrics *Metrics
	// Docker answers docker checks; required for type docker only.
	Docker ContainerHealth
	// Checks is the process's check loop, shared by its monitors (cmd/
	// gives every monitor the same). Nil: the monitor runs a loop of its
	// own.
	Checks *Checks
}

// Monitor runs the active health checks of one service: one prober per
// backend of its Set, started and stopped as the set's membership changes,
// and the service's passive checker. It keeps no goroutine of its own
// while it runs: the set's changes, a reload and the end of its context
// or of the check loop each call it, as HAProxy's checks are tasks on
// shared threads. A goroutine per service would cost a process with
// hundreds of idle services a stack each.
type Monitor struct {
	set     *backends.Set
	log     *slog.Logger
	metrics *Metrics
	docker  ContainerHealth
	passive *Passive
	rand    func() float64 // tests make it deterministic

	// recMu serializes reconciles with each other and with the start and
	// stop of a run. A reconcile holds it from reading the members to
	// applying them, so an older member list never overwrites a newer
	// one. It is taken before mu, never while holding the set's lock.
	recMu sync.Mutex

	mu      sync.Mutex
	cfg     Config // validated, with defaults
	checker Checker
	running bool
	run     *monitorRun    // the current or last run; nil before Start
	checks  *Checks        // where the loop comes from
	loop    *checkLoop     // the check loop, while running
	aside   sync.WaitGroup // goroutine probes of this monitor's probers
	probers map[*backends.Backend]*prober
	series  map[string]bool // backend IDs exported in Metrics
}

// monitorRun is one Start's life.
type monitorRun struct {
	sl       *sharedLoop
	untrack  func()        // unregisters what calls the run; set by Start
	stopping bool          // guarded by Monitor.recMu
	once     sync.Once     // the first of ctx's end and the loop's stops
	done     chan struct{} // closed once stopped
	err      error         // why it stopped on its own; read once done is closed
}

// NewMonitor validates cfg and returns a monitor for set; Start or Run
// starts it.
func NewMonitor(set *backends.Set, cfg Config, opts Options) (*Monitor, error) {
	checker, err := NewChecker(cfg, opts.Docker)
	if err != nil {
		return nil, err
	}
	m := &Monitor{
		set:     set,
		log:     opts.Logger,
		metrics: opts.Metrics,
		docker:  opts.Docker,
		checks:  opts.Checks,
		rand:    rand.Float64,
		cfg:     cfg.WithDefaults(),
		checker: checker,
		probers: map[*backends.Backend]*prober{},
		series:  map[string]bool{},
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.checks == nil {
		m.checks = NewChecks()
	}
	m.passive = NewPassive(m.cfg.Passive, PassiveOptions{Logger: m.log, OnEject: m.ProbeNow})
	return m, nil
}

// Passive returns the service's passive checker, wired to probe an ejected
// backend at once. Hand it to the data path as its DialObserver.
func (m *Monitor) Passive() *Passive { return m.passive }

// Config returns the config in force, with defaults filled in.
func (m *Monitor) Config() Config {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cfg
}

// Run is Start, then waits for Done: it probes the set's backends until
// ctx ends and returns nil once every prober has stopped, or the error of
// a broken check loop.
func (m *Monitor) Run(ctx context.Context) error {
	r, err := m.start(ctx)
	if err != nil {
		return err
	}
	<-r.done
	return r.err
}

// Start probes the set's backends until ctx ends and returns at once; Done
// is closed once every prober has stopped. A monitor runs once at a time.
// Its probes run on the check loop of Options.Checks, shared with the
// other monitors given it; should that loop break (only a failing epoll
// set ends it), the monitor logs why and stops.
func (m *Monitor) Start(ctx context.Context) error {
	_, err := m.start(ctx)
	return err
}

// Done returns a channel closed once the monitor of the last Start has
// stopped, its probes ended and its series removed; closed before Start.
func (m *Monitor) Done() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.run == nil {
		return closedChan
	}
	return m.run.done
}

var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

func (m *Monitor) start(ctx context.Context) (*monitorRun, error) {
	// Held until the run is wired up: whatever would reconcile or stop it
	// meanwhile waits.
	m.recMu.Lock()
	defer m.recMu.Unlock()
	m.mu.Lock()
	if m.running {
		m.mu.Unlock()
		return nil, fmt.Errorf("health monitor of service %s: already running", m.set.Name())
	}
	sl, err := m.checks.acquire()
	if err != nil {
		m.mu.Unlock()
		return nil, fmt.Errorf("health monitor of service %s: %w", m.set.Name(), err)
	}
	r := &monitorRun{sl: sl, done: make(chan struct{})}
	m.running, m.loop, m.run = true, sl.loop, r
	m.mu.Unlock()

	// Registered before the first reconcile, so a change in between is
	// seen.
	stopTrack := m.set.OnChange(func() { m.reconcile(r) })
	m.reconcileLocked()
	stopCtx := context.AfterFunc(ctx, func() { m.stop(r, nil) })
	stopLoop := context.AfterFunc(sl.ended, func() {
		m.stop(r, fmt.Errorf("health monitor of service %s: %w", m.set.Name(), sl.err))
	})
	r.untrack = func() {
		stopTrack()
		stopCtx()
		stopLoop()
	}
	return r, nil
}

// stop ends run r: it runs in the goroutine context.AfterFunc starts for
// ctx's end or the loop's, which exists only while the monitor stops.
// Once the loop has applied the removals no probe of r starts again;
// those of other checkers still running are cancelled and awaited, so
// nothing of this run outlives Done.
func (m *Monitor) stop(r *monitorRun, err error) {
	r.once.Do(func() {
		m.recMu.Lock()
		r.untrack() // Start has set it: it held recMu until then
		r.stopping = true
		m.stopProbers()
		m.recMu.Unlock()
		r.sl.sync()
		m.aside.Wait()
		m.checks.release(r.sl)
		m.shutdown()
		if err != nil {
			m.log.Error("health monitor stopped", "service", m.set.Name(), "err", err)
		}
		r.err = err
		close(r.done)
	})
}

// Reconfigure applies a new config to a running (or not yet running)
// monitor. A bad config is rejected and the running one stays. Backends
// keep their state; rise and fall counts start over.
func (m *Monitor) Reconfigure(cfg Config) error {
	checker, err := NewChecker(cfg, m.docker)
	if err != nil {
		return err
	}
	cfg = cfg.WithDefaults()
	m.recMu.Lock()
	defer m.recMu.Unlock()
	m.mu.Lock()
	if cfg == m.cfg {
		m.mu.Unlock()
		return nil
	}
	m.cfg, m.checker = cfg, checker
	live := m.running && !m.run.stopping
	m.mu.Unlock()
	m.passive.SetConfig(cfg.Passive)
	if live {
		// Probers hold their config; restart them all with the new one.
		// Verdicts live on the backends and survive.
		m.stopProbers()
		m.reconcileLocked()
	}
	return nil
}

// ProbeNow asks for an immediate probe of b, merged with one already
// pending or in flight. It does nothing when b has no prober.
func (m *Monitor) ProbeNow(b *backends.Backend) {
	m.mu.Lock()
	p, loop := m.probers[b], m.loop
	m.mu.Unlock()
	if p != nil {
		loop.post(loopCmd{op: cmdProbeNow, p: p})
	}
}

// reconcile brings run r in step with the set's members, unless r is
// stopping. The set calls it after a change of membership.
func (m *Monitor) reconcile(r *monitorRun) {
	m.recMu.Lock()
	defer m.recMu.Unlock()
	if !r.stopping {
		m.reconcileLocked()
	}
}

// reconcileLocked starts a prober for each new backend, stops those of
// removed ones and keeps the metric series in step. recMu is held.
func (m *Monitor) reconcileLocked() {
	members := m.set.Backends()
	m.mu.Lock()
	defer m.mu.Unlock()
	now := make(map[*backends.Backend]bool, len(members))
	for _, b := range members {
		now[b] = true
	}
	// Only the backends that failed a dial have a count to forget: the
	// members are not kept between reconciles, which at thousands of
	// backends would cost more than everything else health keeps when
	// active checks are off.
	m.passive.forgetAllBut(now)
	for b, p := range m.probers {
		if !now[b] || m.cfg.Type == TypeNone {
			m.loop.post(loopCmd{op: cmdRemove, p: p})
			delete(m.probers, b)
		}
	}
	if m.cfg.Type == TypeNone {
		// Verdicts from an earlier config would hold backends down forever.
		for _, b := range members {
			if v, _ := b.Health(); v != nil && !v.OK {
				b.SetHealth(true, "health checks disabled")
				m.log.Info("backend up", "service", b.Service(), "backend", b.ID(),
					"address", b.Address(), "reason", "health checks disabled")
			}
		}
	} else {
		// The probers made now share one copy of the config: each of
		// thousands holding its own would double what a prober costs.
		cfg := m.cfg
		for _, b := range members {
			if m.probers[b] == nil {
				p := newProber(b, &cfg, m.checker, m.log, m.metrics.series(b.Service(), b.ID()), m.rand)
				p.aside = &m.aside
				m.loop.post(loopCmd{op: cmdAdd, p: p})
				m.probers[b] = p
			}
		}
	}
	m.syncSeriesLocked()
}

// syncSeriesLocked exports zero series for newly probed backend IDs and
// deletes those of IDs no longer probed. Series are per ID, and a backend
// whose address changed is a new Backend with the same ID: its counts go on.
func (m *Monitor) syncSeriesLocked() {
	ids := make(map[string]bool, len(m.probers))
	for b := range m.probers {
		ids[b.ID()] = true
	}
	service := m.set.Name()
	for id := range m.series {
		if !ids[id] {
			m.metrics.backendRemoved(service, id)
		}
	}
	for id := range ids {
		if !m.series[id] {
			m.metrics.backendAdded(service, id)
		}
	}
	m.series = ids
}

// stopProbers stops every prober; the next reconcile starts new ones.
// Their probes in flight are dropped, unobserved.
func (m *Monitor) stopProbers() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for b, p := range m.probers {
		m.loop.post(loopCmd{op: cmdRemove, p: p})
		delete(m.probers, b)
	}
}

// shutdown ends a run once its probers are off the loop: the service's
// series go.
func (m *Monitor) shutdown() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.syncSeriesLocked()
	m.running, m.loop = false, nil
}
