package backends

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// SetOptions tunes how a Set builds its pools. The zero value works.
type SetOptions struct {
	// SlowStart ramps a new or recovered backend's weight linearly from
	// near zero to its full value over this time; 0 disables.
	SlowStart time.Duration
	// MaxConnsPerBackend caps open connections per backend; 0 is unlimited.
	MaxConnsPerBackend int
	// HoldUntilChecked starts every new backend down (PendingCheck) until a
	// health checker gives its first verdict, so a replica joins rotation only
	// once it has passed a check. Set it when the service has active checks.
	HoldUntilChecked bool
}

// PendingCheck is the reason a backend held by HoldUntilChecked is down.
const PendingCheck = "waiting for the first health check"

// Set owns the backends of one service and publishes their Pool snapshots.
type Set struct {
	name   string
	policy Policy
	opts   SetOptions
	clock  func() time.Time // nil: time.Now; tests inject a fake
	epoch  time.Time        // the origin of the backends' instants

	mu sync.Mutex
	// sorted holds every backend by ID then Address, the key that
	// identifies a backend across updates; Update finds them by merging,
	// so the set keeps no index of its own. Update replaces the slice and
	// never changes it in place, so a pool may share it.
	sorted   []*Backend
	onChange []*func() // called after an Update that changed membership
	timer    *time.Timer
	timerAt  time.Time
	timerGen uint64 // tells a fired timer whether it is still the pending one
	closed   bool
	pool     atomic.Pointer[Pool]
	rotation atomic.Uint64 // round-robin position, kept across snapshots
}

// NewSet returns an empty set for the named service.
func NewSet(service string, policy Policy, opts SetOptions) *Set {
	return newSet(service, policy, opts, nil)
}

func newSet(service string, policy Policy, opts SetOptions, clock func() time.Time) *Set {
	s := &Set{name: service, policy: policy, opts: opts, clock: clock}
	s.epoch = s.now()
	s.mu.Lock()
	s.pool.Store(s.buildLocked(s.now()))
	s.mu.Unlock()
	return s
}

func (s *Set) now() time.Time {
	if s.clock != nil {
		return s.clock()
	}
	return time.Now()
}

// Name returns the service name.
func (s *Set) Name() string { return s.name }

// Policy returns the balancing policy of the set.
func (s *Set) Policy() Policy {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.policy
}

// Options returns the set's current options.
func (s *Set) Options() SetOptions {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts
}

// Reconfigure changes the balancing policy and options in place and
// publishes a pool built with them. Backends keep their counters, health and
// open connections, so a reload that changes balance never empties the pool.
// HoldUntilChecked applies to backends added from now on.
func (s *Set) Reconfigure(policy Policy, opts SetOptions) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.policy, s.opts = policy, opts
	s.pool.Store(s.buildLocked(s.now()))
}

// Pool returns the current snapshot. It is never nil.
func (s *Set) Pool() *Pool { return s.pool.Load() }

// Backends returns every backend of the service, whatever its state, sorted
// by ID. The slice is a copy.
func (s *Set) Backends() []*Backend {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sorted)
}

// Backend finds a backend by ID; nil if there is none.
func (s *Set) Backend(id string) *Backend {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.sorted {
		if b.ID() == id {
			return b
		}
	}
	return nil
}

// OnChange registers fn to be called after every Update that changes
// membership (a backend added or removed), in the goroutine that called Update and outside the set's
// lock, so fn may read the set. A health monitor follows the set this way
// without a goroutine of its own, which at hundreds of idle services
// would cost a stack each. fn must not block: Update waits for it. After
// stop returns, fn is called at most once more, by an Update already
// under way.
func (s *Set) OnChange(fn func()) (stop func()) {
	f := &fn
	s.mu.Lock()
	defer s.mu.Unlock()
	// Copy on write: Update calls a snapshot of the list without the lock.
	s.onChange = append(slices.Clip(s.onChange), f)
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if i := slices.Index(s.onChange, f); i >= 0 {
			s.onChange = slices.Delete(slices.Clone(s.onChange), i, i+1)
		}
	}
}

// Update replaces the set's backends with specs. Backends with the same ID and
// Address keep their counters and health (a changed weight, priority or drain
// is applied to them); removed ones leave the pool (their open connections go
// on). When two specs share ID and Address the first wins.
//
// Backends added while the pool is empty take their full share at once; ones
// added to a serving pool ramp over SetOptions.SlowStart. Callers that merge
// several providers should pass the merged list, so that the backends known
// at startup arrive in one Update and none of them ramps.
func (s *Set) Update(specs []Spec) { s.UpdateOwned(slices.Clone(specs)) }

// UpdateOwned is Update with a list the set keeps: its backends point into
// it instead of copying their specs, so the caller must never change it
// afterwards. A provider that makes a new list for every change (Docker
// discovery's) passes it here and its backends' specs cost nothing more.
func (s *Set) UpdateOwned(specs []Spec) {
	for _, fn := range s.update(specs) {
		(*fn)()
	}
}

// update applies specs under the set's lock and returns the
// callbacks to call once it is released: none if membership is the same.
func (s *Set) update(specs []Spec) []*func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	ramp := s.pool.Load().Len() > 0
	// The specs in key order, stable so that the first of equal keys
	// comes first; walking them beside the sorted backends finds each
	// one's backend.
	order := make([]int32, len(specs))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortStableFunc(order, func(i, j int32) int { return compareKey(specs[i].ID, specs[i].Address, &specs[j]) })
	next := make([]*Backend, 0, len(specs))
	old := s.sorted
	added := false
	for n, i := range order {
		sp := &specs[i]
		if n > 0 && compareKey(sp.ID, sp.Address, &specs[order[n-1]]) == 0 {
			continue
		}
		for len(old) > 0 && old[0].compare(sp) < 0 {
			old = old[1:]
		}
		var b *Backend
		if len(old) > 0 && old[0].compare(sp) == 0 {
			b, old = old[0], old[1:]
			// The build below re-derives the state from the new spec.
			b.respec(sp)
		} else {
			b = newBackend(s, sp, now, ramp)
			added = true
		}
		next = append(next, b)
	}
	membership := added || len(next) != len(s.sorted)
	s.sorted = next
	s.pool.Store(s.buildLocked(now))
	if !membership {
		return nil
	}
	return s.onChange
}

// compareKey orders backends by ID, then Address: (id, address) against
// sp's.
func compareKey(id, address string, sp *Spec) int {
	if c := strings.Compare(id, sp.ID); c != 0 {
		return c
	}
	return strings.Compare(address, sp.Address)
}

// compare orders b against the backend sp would make.
func (b *Backend) compare(sp *Spec) int {
	cur := b.spec.Load()
	return compareKey(cur.ID, cur.Address, sp)
}

// rebuild publishes a new pool from the current backends and states.
func (s *Set) rebuild() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pool.Store(s.buildLocked(s.now()))
}

// rebuildAt schedules a rebuild (for an ejection that ends). Only the earliest
// pending time is kept; every build schedules the next event it knows of.
func (s *Set) rebuildAt(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scheduleLocked(t)
}

func (s *Set) scheduleLocked(t time.Time) {
	if s.closed || (s.timer != nil && !s.timerAt.IsZero() && !t.Before(s.timerAt)) {
		return
	}
	if s.timer != nil {
		s.timer.Stop()
	}
	s.timerGen++
	gen := s.timerGen
	s.timerAt = t
	s.timer = time.AfterFunc(t.Sub(s.now()), func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if gen != s.timerGen || s.closed {
			return // replaced by an earlier timer, or the set is closed
		}
		s.timerAt = time.Time{}
		s.pool.Store(s.buildLocked(s.now()))
	})
}

// Close stops the set's timers. The last pool stays readable.
func (s *Set) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
	}
}

// buildLocked makes the snapshot: backends that may take new connections, in
// the lowest priority group with one up, weights ramped for slow start. It
// schedules the next rebuild a pool needs without any event: a slow start
// step or the end of an ejection.
func (s *Set) buildLocked(now time.Time) *Pool {
	p := &Pool{service: s.name, policy: s.policy, rotation: &s.rotation, maxPerBackend: int64(s.opts.MaxConnsPerBackend)}
	snaps := make([]snapshot, len(s.sorted))
	var next time.Time
	best, found := 0, false
	for i, b := range s.sorted {
		sn := b.snapshotAt(now)
		snaps[i] = sn
		if sn.ejectedUntil.After(now) {
			next = earliest(next, sn.ejectedUntil)
		}
		// Weight 0 takes no new connections, so it does not hold its group
		// open: the backup group takes over as if the backend were down.
		if sn.state != StateUp || sn.weight <= 0 {
			continue
		}
		if !found || sn.priority < best {
			best, found = sn.priority, true
		}
	}
	serves := func(sn *snapshot) bool {
		return sn.state == StateUp && sn.weight > 0 && sn.priority == best
	}
	n := 0
	for i := range snaps {
		if serves(&snaps[i]) {
			n++
		}
	}
	if n > 0 {
		p.weights = make([]int, 0, n)
	}
	// Usually every backend serves: the pool then shares the set's slice,
	// which Update replaces rather than changes.
	shared := n == len(s.sorted)
	if shared {
		p.members = s.sorted
	} else if n > 0 {
		p.members = make([]*Backend, 0, n)
	}
	for i := range snaps {
		sn := &snaps[i]
		if !serves(sn) {
			continue
		}
		w := min(sn.weight, MaxWeight)
		if ss := s.opts.SlowStart; ss > 0 {
			var due time.Time
			w, due = rampWeight(w, sn.rampStart, now, ss)
			next = earliest(next, due)
		}
		if !shared {
			p.members = append(p.members, sn.b)
		}
		p.weights = append(p.weights, w)
	}
	p.prepare()
	if !next.IsZero() {
		s.scheduleLocked(next)
	}
	return p
}

// earliest returns the sooner of a and b, ignoring zero times.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}
