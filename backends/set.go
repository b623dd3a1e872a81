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
}

// Set owns the backends of one service and publishes their Pool snapshots.
type Set struct {
	name   string
	policy Policy
	opts   SetOptions

	mu       sync.Mutex
	byKey    map[string]*Backend // key: ID + " " + Address
	sorted   []*Backend          // every backend, by ID then Address
	changed  chan struct{}       // closed and replaced when membership changes
	timer    *time.Timer
	timerAt  time.Time
	pool     atomic.Pointer[Pool]
	rotation atomic.Uint64 // round-robin position, kept across snapshots
}

// NewSet returns an empty set for the named service.
func NewSet(service string, policy Policy, opts SetOptions) *Set {
	s := &Set{name: service, policy: policy, opts: opts, byKey: map[string]*Backend{}, changed: make(chan struct{})}
	s.pool.Store(s.buildLocked(time.Now()))
	return s
}

// Name returns the service name.
func (s *Set) Name() string { return s.name }

// Policy returns the balancing policy of the set.
func (s *Set) Policy() Policy { return s.policy }

// Options returns the options the set was made with.
func (s *Set) Options() SetOptions { return s.opts }

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

// Changed returns a channel closed at the next change of membership, so a
// health checker can pick up new backends at once.
func (s *Set) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Update replaces the set's backends with specs. Backends with the same ID and
// Address keep their counters and health; removed ones leave the pool (their
// open connections go on).
func (s *Set) Update(specs []Spec) {
	now := time.Now()
	s.mu.Lock()
	next := make(map[string]*Backend, len(specs))
	var added []*Backend
	membership := len(specs) != len(s.byKey)
	for _, sp := range specs {
		k := sp.ID + " " + sp.Address
		if _, dup := next[k]; dup {
			continue
		}
		b, ok := s.byKey[k]
		if !ok {
			b = newBackend(s, sp, now)
			membership = true
			added = append(added, b)
		}
		next[k] = b
	}
	s.byKey = next
	s.sorted = s.sorted[:0]
	for _, b := range next {
		s.sorted = append(s.sorted, b)
	}
	slices.SortFunc(s.sorted, func(a, b *Backend) int {
		if c := strings.Compare(a.ID(), b.ID()); c != 0 {
			return c
		}
		return strings.Compare(a.Address(), b.Address())
	})
	// Spec changes such as weight or drain are applied after the membership
	// update so that each backend re-derives its state from the new spec.
	var respec []*Backend
	for _, sp := range specs {
		b := next[sp.ID+" "+sp.Address]
		if old := b.spec.Load(); *old != sp {
			b.spec.Store(&sp)
			respec = append(respec, b)
		}
	}
	if membership {
		close(s.changed)
		s.changed = make(chan struct{})
	}
	s.mu.Unlock()
	_ = added
	for _, b := range respec {
		b.refresh()
	}
	s.rebuild()
}

// rebuild publishes a new pool from the current backends and states.
func (s *Set) rebuild() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.pool.Store(s.buildLocked(now))
}

// rebuildAt schedules a rebuild (for an ejection that ends or a slow start
// step). Only the earliest pending time is kept; rebuilding schedules the next.
func (s *Set) rebuildAt(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scheduleLocked(t)
}

func (s *Set) scheduleLocked(t time.Time) {
	if s.timer != nil && !s.timerAt.IsZero() && !t.Before(s.timerAt) {
		return
	}
	if s.timer != nil {
		s.timer.Stop()
	}
	s.timerAt = t
	s.timer = time.AfterFunc(time.Until(t), func() {
		s.mu.Lock()
		s.timerAt = time.Time{}
		backends := slices.Clone(s.sorted)
		s.mu.Unlock()
		for _, b := range backends {
			b.refresh()
		}
		s.rebuild()
	})
}

// Close stops the set's timers.
func (s *Set) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timer != nil {
		s.timer.Stop()
	}
}

// buildLocked makes the snapshot: backends that may take new connections, in
// the lowest priority group with one up, weights ramped for slow start.
func (s *Set) buildLocked(now time.Time) *Pool {
	p := &Pool{service: s.name, policy: s.policy, rotation: &s.rotation, maxPerBackend: int64(s.opts.MaxConnsPerBackend)}
	best := 0
	found := false
	for _, b := range s.sorted {
		if st, _ := b.State(); st != StateUp || b.spec.Load().Weight <= 0 {
			continue
		}
		if pr := b.spec.Load().Priority; !found || pr < best {
			best, found = pr, true
		}
	}
	var nextRamp time.Time
	for _, b := range s.sorted {
		sp := b.spec.Load()
		if st, _ := b.State(); st != StateUp || sp.Weight <= 0 || sp.Priority != best {
			continue
		}
		w := sp.Weight
		if ss := s.opts.SlowStart; ss > 0 {
			w, nextRamp = rampWeight(sp.Weight, now.Sub(b.UpSince()), ss, now, nextRamp)
		}
		p.members = append(p.members, b)
		p.weights = append(p.weights, w)
	}
	p.prepare()
	if !nextRamp.IsZero() {
		s.scheduleLocked(nextRamp)
	}
	return p
}
