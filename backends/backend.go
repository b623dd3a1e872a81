package backends

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Spec is what a provider knows about one backend. Providers send full lists
// of Specs; a Set keeps one Backend per (ID, Address) across updates so that
// counters and health survive a relist.
type Spec struct {
	// ID names the backend within its service: the container name for Docker
	// backends, host:port for static ones. It is the metrics label.
	ID string
	// Address is the host:port dialed.
	Address string
	// Network is the Docker network Address belongs to; "" for static backends.
	Network string
	// Container is the full container ID; "" for static backends.
	Container string
	// Node is the Swarm node (hostname) a task runs on, and Slot its
	// replica number; "" and 0 outside Swarm mode.
	Node string
	Slot int
	// Weight is the relative share of new connections; 0 takes none.
	Weight int
	// Priority is the backend's group: a group gets connections only while no
	// lower-numbered group has a backend up.
	Priority int
	// Drain, when not empty, says why the provider wants the backend to take no
	// new connections (for example "container stopping"). Open ones go on.
	Drain string
}

// Verdict is one health decision about a backend.
type Verdict struct {
	OK     bool
	Reason string
	At     time.Time
}

// Backend is the runtime object behind one Spec: its state and its counters.
// All methods are safe for concurrent use; the data path only touches atomics.
//
// A large setup discovers thousands of backends of which most, most of the
// time, serve nothing and fail nothing, so a backend keeps inline only what
// every backend needs: the data path's atomics, its spec, its state and when
// it came up. What only a checked, ejected or failing backend needs is made
// the first time it does (cold, connectErrors).
type Backend struct {
	set *Set

	active         atomic.Int64
	total          atomic.Uint64
	bytesToBackend atomic.Uint64
	bytesToClient  atomic.Uint64
	connectErrors  atomic.Pointer[dialErrorCounts] // nil until the first failed dial
	cur            atomic.Uint32                   // lastState, readable without mu by the data path

	// The fields are in an order that leaves no padding: the struct fills
	// its allocation size class (96 B) exactly.
	adminState State      // StateUp (no override), StateDraining or StateMaint
	mu         sync.Mutex // guards the state inputs below and cold
	// spec is the backend's latest Spec: an element of the list its set
	// was last updated with, which the set owns and nobody changes, so a
	// discovered backend's spec is the provider's, not a copy of it (120
	// bytes a backend). Its ID and Address, the backend's key in the set,
	// are the same in every spec it is given.
	spec      atomic.Pointer[Spec]
	lastState State
	// ramps says slow start ramps the backend's weight from upSince; a
	// backend that joined an empty pool takes its full weight at once.
	ramps bool
	// upSince is when the backend last became up (or was added), as an
	// instant of its set's clock: 8 bytes where a time.Time takes 24.
	upSince instant
	cold    *coldState // nil until the backend is first checked, ejected or asked for DownContext
}

// coldState is what only some backends ever need: a health verdict, an
// ejection, a context for on_backend_down.
type coldState struct {
	health       *Verdict // nil: not checked yet (counts as up)
	lastCheck    *Verdict // latest probe result, for status pages
	ejectedUntil time.Time
	ejectReason  string
	// down is made at the first DownContext call, which only a backend
	// that serves a connection makes; a checked one may never need it.
	// wentDown says the current one (made or not yet) is canceled.
	wentDown   bool
	down       context.Context
	cancelDown context.CancelFunc
}

// coldLocked returns the backend's cold state, making it on first use.
func (b *Backend) coldLocked() *coldState {
	if b.cold == nil {
		b.cold = new(coldState)
	}
	return b.cold
}

// newBackend makes the runtime object for s. ramp says whether slow start
// applies from now: a backend that joins an empty pool (the first list at
// startup, or a service scaled up from zero) takes its full share at once,
// because there is no one to share with and ramping only delays recovery.
func newBackend(set *Set, s *Spec, now time.Time, ramp bool) *Backend {
	b := &Backend{set: set, ramps: ramp}
	b.spec.Store(s)
	b.upSince = b.instant(now)
	if set != nil && set.opts.HoldUntilChecked {
		b.coldLocked().health = &Verdict{OK: false, Reason: PendingCheck, At: now}
	}
	b.lastState, _ = b.stateLocked(now)
	b.cur.Store(uint32(b.lastState))
	return b
}

// now reads the owning set's clock, so tests can move time.
func (b *Backend) now() time.Time {
	if b.set == nil {
		return time.Now()
	}
	return b.set.now()
}

// Spec returns the backend's latest spec.
func (b *Backend) Spec() Spec { return *b.spec.Load() }

// ID returns the backend's name within its service.
func (b *Backend) ID() string { return b.spec.Load().ID }

// Address returns the host:port to dial.
func (b *Backend) Address() string { return b.spec.Load().Address }

// respec makes s, a spec of the same ID and Address from the set's newest
// list, the backend's, and reports whether anything in it changed. The
// backend takes s even when nothing did, so that the list before can be
// freed.
func (b *Backend) respec(s *Spec) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := b.spec.Swap(s)
	return *old != *s
}

// Service names the service the backend belongs to.
func (b *Backend) Service() string {
	if b.set == nil {
		return ""
	}
	return b.set.name
}

// Active is the number of open connections to the backend.
func (b *Backend) Active() int64 { return b.active.Load() }

// Total is the number of connections ever opened to the backend.
func (b *Backend) Total() uint64 { return b.total.Load() }

// Bytes returns the bytes moved to the backend and back to clients.
func (b *Backend) Bytes() (toBackend, toClient uint64) {
	return b.bytesToBackend.Load(), b.bytesToClient.Load()
}

// ConnOpened records a new connection to the backend.
func (b *Backend) ConnOpened() {
	b.active.Add(1)
	b.total.Add(1)
}

// ConnClosed records the end of a connection and the bytes it moved.
func (b *Backend) ConnClosed(toBackend, toClient int64) {
	b.active.Add(-1)
	b.AddBytes(toBackend, toClient)
}

// AddBytes adds to the byte counters while a connection is still open.
func (b *Backend) AddBytes(toBackend, toClient int64) {
	if toBackend > 0 {
		b.bytesToBackend.Add(uint64(toBackend))
	}
	if toClient > 0 {
		b.bytesToClient.Add(uint64(toClient))
	}
}

// DownContext returns a context that is canceled when the backend goes down
// (fails health checks or is ejected). A backend that recovers gets a fresh
// context. The data path uses it for on_backend_down: close.
func (b *Backend) DownContext() context.Context {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.coldLocked()
	if c.down == nil {
		c.down, c.cancelDown = context.WithCancel(context.Background())
		if c.wentDown {
			c.cancelDown()
		}
	}
	return c.down
}

// Up reports whether the backend takes new connections; one atomic load.
func (b *Backend) Up() bool { return State(b.cur.Load()) == StateUp }

// State returns the backend's effective state and why.
func (b *Backend) State() (State, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stateLocked(b.now())
}

// stateLocked derives the effective state; operator overrides win over the
// provider, which wins over health.
func (b *Backend) stateLocked(now time.Time) (State, string) {
	switch b.adminState {
	case StateMaint:
		return StateMaint, "set to maint by an operator"
	case StateDraining:
		return StateDraining, "set to drain by an operator"
	}
	if d := b.spec.Load().Drain; d != "" {
		return StateDraining, d
	}
	c := b.cold
	if c == nil {
		return StateUp, "not checked yet"
	}
	if c.health != nil && !c.health.OK {
		return StateDown, c.health.Reason
	}
	if now.Before(c.ejectedUntil) {
		return StateDown, c.ejectReason
	}
	if c.health == nil {
		return StateUp, "not checked yet"
	}
	return StateUp, c.health.Reason
}

// Health returns the latest health verdict that decided the state (nil when
// none yet) and the latest single probe result.
func (b *Backend) Health() (verdict, lastCheck *Verdict) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cold == nil {
		return nil, nil
	}
	return b.cold.health, b.cold.lastCheck
}

// UpSince returns when the backend last became up (or was added).
func (b *Backend) UpSince() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.time(b.upSince)
}

// SetHealth records an active health decision: ok=false takes the backend
// down with reason, ok=true brings it back.
func (b *Backend) SetHealth(ok bool, reason string) {
	b.update(func(now time.Time) { b.coldLocked().health = &Verdict{OK: ok, Reason: reason, At: now} })
}

// RecordCheck stores one probe's result for status pages without changing
// the state (rise and fall decide that through SetHealth).
func (b *Backend) RecordCheck(ok bool, reason string) {
	v := &Verdict{OK: ok, Reason: reason, At: b.now()}
	b.mu.Lock()
	b.coldLocked().lastCheck = v
	b.mu.Unlock()
}

// Eject takes the backend down until the given time (passive health).
func (b *Backend) Eject(until time.Time, reason string) {
	b.update(func(time.Time) {
		c := b.coldLocked()
		c.ejectedUntil, c.ejectReason = until, reason
	})
	if b.set != nil {
		b.set.rebuildAt(until)
	}
}

// Ejected reports whether the backend is inside a passive ejection.
func (b *Backend) Ejected() bool {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cold != nil && now.Before(b.cold.ejectedUntil)
}

// SetAdminState applies an operator's override: StateMaint, StateDraining,
// or StateUp to clear the override ("ready").
func (b *Backend) SetAdminState(s State) {
	b.update(func(time.Time) { b.adminState = s })
}

// update changes a state input, tracks transitions and asks the set to
// rebuild its pool when the effective state changed.
func (b *Backend) update(change func(now time.Time)) {
	now := b.now()
	b.mu.Lock()
	change(now)
	_, changed := b.syncLocked(now)
	b.mu.Unlock()
	if changed && b.set != nil {
		b.set.rebuild()
	}
}

// syncLocked re-derives the effective state at now and applies the side
// effects of a transition: a backend that becomes up starts its slow start
// ramp (a recovered backend is cold, or was failing a moment ago), one that
// goes down cancels its DownContext. It reports whether the state changed.
func (b *Backend) syncLocked(now time.Time) (State, bool) {
	st, _ := b.stateLocked(now)
	prev := b.lastState
	if st == prev {
		return st, false
	}
	b.lastState = st
	b.cur.Store(uint32(st))
	if st == StateUp {
		b.upSince, b.ramps = b.instant(now), true
	}
	// Only a verdict or an ejection takes a backend down, and both live
	// in its cold state.
	if c := b.cold; c != nil {
		if st == StateDown {
			c.wentDown = true
			if c.cancelDown != nil {
				c.cancelDown()
			}
		} else if prev == StateDown {
			c.wentDown, c.down, c.cancelDown = false, nil, nil
		}
	}
	return st, true
}

// snapshot is what a pool build needs of a backend, read under one lock so
// state, ramp and ejection agree with each other.
type snapshot struct {
	b            *Backend
	weight       int
	priority     int
	state        State
	rampStart    time.Time
	ejectedUntil time.Time
}

// snapshotAt syncs the backend's state to now (an ejection may have expired
// since the last event) and returns what a pool build needs.
func (b *Backend) snapshotAt(now time.Time) snapshot {
	b.mu.Lock()
	defer b.mu.Unlock()
	st, _ := b.syncLocked(now)
	sp := b.spec.Load()
	sn := snapshot{b: b, weight: sp.Weight, priority: sp.Priority, state: st}
	if b.ramps {
		sn.rampStart = b.time(b.upSince)
	}
	if b.cold != nil {
		sn.ejectedUntil = b.cold.ejectedUntil
	}
	return sn
}

// instant is a time of a backend's set's clock as nanoseconds since the
// set's epoch: a third of a time.Time. The epoch carries the monotonic
// clock reading, so an instant made from a time.Now() is as immune to wall
// clock steps as the time it stands for.
type instant int64

// epoch is the origin of the backend's instants.
func (b *Backend) epoch() time.Time {
	if b.set == nil {
		return time.Unix(0, 0)
	}
	return b.set.epoch
}

func (b *Backend) instant(t time.Time) instant { return instant(t.Sub(b.epoch())) }

func (b *Backend) time(i instant) time.Time { return b.epoch().Add(time.Duration(i)) }
