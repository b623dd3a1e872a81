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
type Backend struct {
	spec atomic.Pointer[Spec]
	set  *Set

	active         atomic.Int64
	total          atomic.Uint64
	bytesToBackend atomic.Uint64
	bytesToClient  atomic.Uint64
	connectErrors  [numDialErrors]atomic.Uint64

	mu           sync.Mutex // guards the state inputs below and down
	health       *Verdict   // nil: not checked yet (counts as up)
	lastCheck    *Verdict   // latest probe result, for status pages
	adminState   State      // StateUp (no override), StateDraining or StateMaint
	ejectedUntil time.Time
	ejectReason  string
	upSince      time.Time // when the backend last became up, for slow start
	lastState    State
	cur          atomic.Uint32 // lastState, readable without mu by the data path
	down         context.Context
	cancelDown   context.CancelFunc
}

func newBackend(set *Set, s Spec, now time.Time) *Backend {
	b := &Backend{set: set, upSince: now}
	b.spec.Store(&s)
	b.down, b.cancelDown = context.WithCancel(context.Background())
	b.lastState, _ = b.stateLocked(now)
	b.cur.Store(uint32(b.lastState))
	return b
}

// Spec returns the backend's latest spec.
func (b *Backend) Spec() Spec { return *b.spec.Load() }

// ID returns the backend's name within its service.
func (b *Backend) ID() string { return b.spec.Load().ID }

// Address returns the host:port to dial.
func (b *Backend) Address() string { return b.spec.Load().Address }

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
	return b.down
}

// Up reports whether the backend takes new connections; one atomic load.
func (b *Backend) Up() bool { return State(b.cur.Load()) == StateUp }

// State returns the backend's effective state and why.
func (b *Backend) State() (State, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stateLocked(time.Now())
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
	if b.health != nil && !b.health.OK {
		return StateDown, b.health.Reason
	}
	if now.Before(b.ejectedUntil) {
		return StateDown, b.ejectReason
	}
	if b.health == nil {
		return StateUp, "not checked yet"
	}
	return StateUp, b.health.Reason
}

// Health returns the latest health verdict that decided the state (nil when
// none yet) and the latest single probe result.
func (b *Backend) Health() (verdict, lastCheck *Verdict) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.health, b.lastCheck
}

// UpSince returns when the backend last became up; slow start ramps from it.
func (b *Backend) UpSince() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.upSince
}

// SetHealth records an active health decision: ok=false takes the backend
// down with reason, ok=true brings it back.
func (b *Backend) SetHealth(ok bool, reason string) {
	b.update(func(now time.Time) { b.health = &Verdict{OK: ok, Reason: reason, At: now} })
}

// RecordCheck stores one probe's result for status pages without changing
// the state (rise and fall decide that through SetHealth).
func (b *Backend) RecordCheck(ok bool, reason string) {
	b.mu.Lock()
	b.lastCheck = &Verdict{OK: ok, Reason: reason, At: time.Now()}
	b.mu.Unlock()
}

// Eject takes the backend down until the given time (passive health).
func (b *Backend) Eject(until time.Time, reason string) {
	b.update(func(time.Time) { b.ejectedUntil, b.ejectReason = until, reason })
	if b.set != nil {
		b.set.rebuildAt(until)
	}
}

// Ejected reports whether the backend is inside a passive ejection.
func (b *Backend) Ejected() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return time.Now().Before(b.ejectedUntil)
}

// SetAdminState applies an operator's override: StateMaint, StateDraining,
// or StateUp to clear the override ("ready").
func (b *Backend) SetAdminState(s State) {
	b.update(func(time.Time) { b.adminState = s })
}

// update changes a state input, tracks transitions and asks the set to
// rebuild its pool when the effective state changed.
func (b *Backend) update(change func(now time.Time)) {
	now := time.Now()
	b.mu.Lock()
	change(now)
	st, _ := b.stateLocked(now)
	prev := b.lastState
	b.lastState = st
	b.cur.Store(uint32(st))
	if st != prev {
		if st == StateUp {
			b.upSince = now
		}
		if st == StateDown {
			b.cancelDown()
		} else if prev == StateDown {
			b.down, b.cancelDown = context.WithCancel(context.Background())
		}
	}
	b.mu.Unlock()
	if st != prev && b.set != nil {
		b.set.rebuild()
	}
}

// refresh re-evaluates time-based state inputs (ejection expiry).
func (b *Backend) refresh() { b.update(func(time.Time) {}) }
