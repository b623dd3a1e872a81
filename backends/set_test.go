package backends

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/tierlb/tierlb/internal/testkit"
)

// poolIDs returns the IDs in the current pool, sorted.
func poolIDs(s *Set) []string {
	out := ids(s.Pool().Members())
	slices.Sort(out)
	return out
}

// Priority groups: the lowest-numbered group with a backend up (and a weight
// above 0) takes every new connection; traffic fails over to the next group
// and back as soon as a lower one has a backend up again.
func TestPriorityGroups(t *testing.T) {
	s := newTestSet(t, RoundRobin, SetOptions{}, nil)
	specs := []Spec{
		{ID: "a", Address: "127.0.0.1:1", Weight: 1, Priority: 0},
		{ID: "b", Address: "127.0.0.1:2", Weight: 1, Priority: 0},
		{ID: "c", Address: "127.0.0.1:3", Weight: 1, Priority: 1},
		{ID: "d", Address: "127.0.0.1:4", Weight: 1, Priority: 5},
	}
	s.Update(specs)
	steps := []struct {
		name string
		do   func()
		want []string
	}{
		{"group 0 serves", func() {}, []string{"a", "b"}},
		{"one of group 0 down", func() { s.Backend("a").SetHealth(false, "refused") }, []string{"b"}},
		{"group 0 down: backup group 1", func() { s.Backend("b").Eject(time.Now().Add(time.Hour), "3 dial failures") }, []string{"c"}},
		{"group 1 in maint: group 5", func() { s.Backend("c").SetAdminState(StateMaint) }, []string{"d"}},
		{"group 0 back: traffic returns", func() { s.Backend("a").SetHealth(true, "ok") }, []string{"a"}},
		{"weight 0 does not hold its group", func() {
			specs[0].Weight = 0
			s.Update(specs)
		}, []string{"d"}},
		{"group 1 ready again", func() { s.Backend("c").SetAdminState(StateUp) }, []string{"c"}},
		{"draining does not hold its group", func() {
			specs[0].Weight, specs[2].Drain = 1, "container stopping"
			s.Update(specs)
		}, []string{"a"}},
	}
	for _, st := range steps {
		st.do()
		if got := poolIDs(s); !slices.Equal(got, st.want) {
			t.Fatalf("%s: pool %v, want %v", st.name, got, st.want)
		}
	}
}

// A backend at max_conns_per_backend is skipped by every policy until one of
// its connections closes; with all full, the order is empty.
func TestMaxConnsPerBackend(t *testing.T) {
	for _, policy := range []Policy{RoundRobin, LeastConn, Random2, SourceHash} {
		t.Run(string(policy), func(t *testing.T) {
			s := newTestSet(t, policy, SetOptions{MaxConnsPerBackend: 2}, nil)
			s.Update(testSpecs(3, 1, 5, 1))
			p := s.Pool()
			full := s.Backend("b01")
			full.ConnOpened()
			full.ConnOpened()
			for i := range 1000 {
				order := p.Order(clientAddr(i), make([]*Backend, 0, 3))
				if len(order) != 2 || slices.Contains(order, full) {
					t.Fatalf("order %v, want the two backends below their cap", ids(order))
				}
			}
			for _, b := range s.Backends() {
				for b.Active() < 2 {
					b.ConnOpened()
				}
			}
			if order := p.Order(netip.Addr{}, make([]*Backend, 0, 3)); len(order) != 0 {
				t.Fatalf("every backend full, yet order %v", ids(order))
			}
			full.ConnClosed(10, 20)
			if order := p.Order(netip.Addr{}, make([]*Backend, 0, 3)); len(order) != 1 || order[0] != full {
				t.Fatalf("order %v, want only %s, which has a free slot again", ids(order), full.ID())
			}
		})
	}
}

// Every state input takes a backend out of the pool and puts it back, with
// the state and reason operators see; DownContext ends only on down.
func TestStates(t *testing.T) {
	clock := newFakeClock()
	s := newTestSet(t, RoundRobin, SetOptions{}, clock)
	specs := testSpecs(2)
	s.Update(specs)
	b := s.Backend("b01")
	steps := []struct {
		name      string
		do        func()
		state     State
		reason    string
		inPool    bool
		downEnded bool
	}{
		{"new", func() {}, StateUp, "not checked yet", true, false},
		{"health fails", func() { b.SetHealth(false, "connection refused") }, StateDown, "connection refused", false, true},
		{"health recovers", func() { b.SetHealth(true, "ok") }, StateUp, "ok", true, false},
		{"ejected", func() { b.Eject(clock.Now().Add(10*time.Second), "3 dial failures") }, StateDown, "3 dial failures", false, true},
		{"still ejected", func() { clock.Advance(9 * time.Second); s.rebuild() }, StateDown, "3 dial failures", false, true},
		{"ejection expires", func() { clock.Advance(time.Second); s.rebuild() }, StateUp, "ok", true, false},
		{"maint", func() { b.SetAdminState(StateMaint) }, StateMaint, "set to maint by an operator", false, false},
		{"maint beats health", func() { b.SetHealth(false, "timeout") }, StateMaint, "set to maint by an operator", false, false},
		{"drain", func() { b.SetHealth(true, "ok"); b.SetAdminState(StateDraining) }, StateDraining, "set to drain by an operator", false, false},
		{"ready", func() { b.SetAdminState(StateUp) }, StateUp, "ok", true, false},
		{"provider drains", func() { specs[1].Drain = "container stopping"; s.Update(specs) }, StateDraining, "container stopping", false, false},
		{"provider undrains", func() { specs[1].Drain = ""; s.Update(specs) }, StateUp, "ok", true, false},
	}
	for _, st := range steps {
		st.do()
		state, reason := b.State()
		if state != st.state || reason != st.reason {
			t.Fatalf("%s: state %v (%q), want %v (%q)", st.name, state, reason, st.state, st.reason)
		}
		if b.Up() != (st.state == StateUp) {
			t.Fatalf("%s: Up() = %v for state %v", st.name, b.Up(), state)
		}
		if in := slices.Contains(s.Pool().Members(), b); in != st.inPool {
			t.Fatalf("%s: in pool = %v, want %v", st.name, in, st.inPool)
		}
		if ended := b.DownContext().Err() != nil; ended != st.downEnded {
			t.Fatalf("%s: DownContext ended = %v, want %v", st.name, ended, st.downEnded)
		}
	}
}

// A backend's DownContext is made when first asked for: one asked for only
// after the backend went down is already ended, one asked for while up ends
// when it goes down, and a recovery hands out a live one.
func TestDownContextMadeLate(t *testing.T) {
	s := newTestSet(t, RoundRobin, SetOptions{}, nil)
	s.Update(testSpecs(1))
	b := s.Backend("b00")
	b.SetHealth(false, "connection refused")
	if b.DownContext().Err() == nil {
		t.Fatal("DownContext first asked for while down is live")
	}
	b.SetHealth(true, "ok")
	up := b.DownContext()
	if up.Err() != nil {
		t.Fatal("DownContext after recovery has ended")
	}
	if b.DownContext() != up {
		t.Fatal("DownContext asked for twice while up made two contexts")
	}
	b.SetHealth(false, "timeout")
	if up.Err() == nil {
		t.Fatal("DownContext taken while up did not end when the backend went down")
	}
}

// Ejections end on the set's own timer, even when a slow start ramp that
// ends before them held the timer when they began (the ejection's end used to
// be dropped, leaving the backend down for good), and when health recovered
// during the ejection.
func TestEjectionExpiresOnTimer(t *testing.T) {
	s := newTestSet(t, RoundRobin, SetOptions{SlowStart: 100 * time.Millisecond}, nil)
	s.Update(testSpecs(2))
	s.Update(testSpecs(3)) // b02 ramps: a timer every 5ms, for 100ms
	a, b := s.Backend("b00"), s.Backend("b01")
	a.Eject(time.Now().Add(300*time.Millisecond), "dial failures")
	b.SetHealth(false, "refused")
	b.Eject(time.Now().Add(300*time.Millisecond), "dial failures")
	b.SetHealth(true, "ok") // still ejected: no state change, no rebuild
	if slices.Contains(s.Pool().Members(), a) || slices.Contains(s.Pool().Members(), b) {
		t.Fatal("ejected backends in the pool")
	}
	testkit.Eventually(t, 5*time.Second, "ejections to expire", func() bool {
		m := s.Pool().Members()
		return slices.Contains(m, a) && slices.Contains(m, b)
	})
}

// Update keeps the Backend (and its counters and health) of every spec whose
// ID and Address stay; a changed address is a new backend.
func TestUpdateKeepsBackends(t *testing.T) {
	s := newTestSet(t, RoundRobin, SetOptions{}, nil)
	specs := testSpecs(3)
	s.Update(specs)
	b := s.Backend("b01")
	b.ConnOpened()
	b.ConnClosed(100, 200)
	b.ConnOpened()
	s.Backend("b02").SetHealth(false, "refused")

	specs[1].Weight = 4
	specs[2].Priority = 0
	s.Update(append(specs, specs[0])) // a duplicate is ignored
	if got := s.Backend("b01"); got != b || got.Active() != 1 || got.Total() != 2 || got.Spec().Weight != 4 {
		t.Fatalf("b01 after a weight change: same=%v active=%d total=%d weight=%d", got == b, got.Active(), got.Total(), got.Spec().Weight)
	}
	if to, from := b.Bytes(); to != 100 || from != 200 {
		t.Fatalf("bytes %d/%d after update, want 100/200", to, from)
	}
	if st, _ := s.Backend("b02").State(); st != StateDown {
		t.Fatalf("b02 lost its health on update: %v", st)
	}
	if n := len(s.Backends()); n != 3 {
		t.Fatalf("%d backends after an update with a duplicate, want 3", n)
	}

	specs[1].Address = "127.0.0.1:9999"
	s.Update(specs)
	if got := s.Backend("b01"); got == b || got.Total() != 0 || got.Address() != "127.0.0.1:9999" {
		t.Fatalf("b01 with a new address kept the old backend (total %d)", got.Total())
	}
	if slices.Contains(s.Backends(), b) || slices.Contains(s.Pool().Members(), b) {
		t.Fatal("the backend at the old address is still in the set")
	}
}

// Update applies every field of a spec but its key to the backend it keeps
// (a field added to Spec and forgotten by respec fails here), and of specs
// sharing a key, in any order, the first wins.
func TestUpdateAppliesEveryField(t *testing.T) {
	s := newTestSet(t, RoundRobin, SetOptions{}, nil)
	first := Spec{ID: "b", Address: "127.0.0.1:2", Weight: 1}
	s.Update([]Spec{first, {ID: "a", Address: "127.0.0.1:1", Weight: 1}})
	b := s.Backend("b")
	fields := reflect.TypeFor[Spec]()
	for i := range fields.NumField() {
		f := fields.Field(i)
		if f.Name == "ID" || f.Name == "Address" {
			continue
		}
		t.Run(f.Name, func(t *testing.T) {
			want := b.Spec()
			v := reflect.ValueOf(&want).Elem().Field(i)
			switch v.Kind() {
			case reflect.String:
				v.SetString(v.String() + "x")
			case reflect.Int:
				v.SetInt(v.Int() + 1)
			default:
				t.Fatalf("Spec.%s is a %s: teach this test to change it", f.Name, v.Kind())
			}
			dup := want
			dup.Weight += 10
			s.Update([]Spec{{ID: "c", Address: "127.0.0.1:3", Weight: 1}, want, {ID: "a", Address: "127.0.0.1:1", Weight: 1}, dup})
			if s.Backend("b") != b {
				t.Fatal("a changed spec made a new backend")
			}
			if got := b.Spec(); got != want {
				t.Fatalf("after changing %s: spec %+v, want %+v", f.Name, got, want)
			}
		})
	}
	if got := ids(s.Backends()); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("backends %v, want [a b c]", got)
	}
}

// OnChange fires on membership changes only: adds and removals, not a new
// weight or a state change.
func TestOnChange(t *testing.T) {
	s := newTestSet(t, RoundRobin, SetOptions{}, nil)
	specs := testSpecs(3)
	steps := []struct {
		name  string
		do    func()
		fires bool
	}{
		{"first list", func() { s.Update(specs) }, true},
		{"same list", func() { s.Update(specs) }, false},
		{"new weight", func() { specs[0].Weight = 3; s.Update(specs) }, false},
		{"health", func() { s.Backend("b00").SetHealth(false, "refused") }, false},
		{"removal", func() { s.Update(specs[:2]) }, true},
		{"add", func() { s.Update(specs) }, true},
		{"swap one for another", func() { s.Update(append(specs[:2:2], testSpecs(4)[3])) }, true},
	}
	var calls int
	stop := s.OnChange(func() {
		calls++
		s.Backends() // outside the set's lock: this would deadlock inside
	})
	t.Cleanup(stop)
	for _, st := range steps {
		before := calls
		st.do()
		if fired := calls > before; fired != st.fires {
			t.Fatalf("%s: OnChange called %d times, want fired=%v", st.name, calls-before, st.fires)
		}
	}
}

// TestOnChangeStop checks that stop unregisters only its own callback.
func TestOnChangeStop(t *testing.T) {
	s := newTestSet(t, RoundRobin, SetOptions{}, nil)
	var a, b int
	stopA := s.OnChange(func() { a++ })
	stopB := s.OnChange(func() { b++ })
	s.Update(testSpecs(1))
	stopA()
	stopA() // twice is harmless
	s.Update(testSpecs(2))
	stopB()
	s.Update(testSpecs(3))
	if a != 1 || b != 2 {
		t.Errorf("calls a=%d b=%d, want 1 and 2", a, b)
	}
}

func TestClosedSetStopsTimers(t *testing.T) {
	s := newTestSet(t, RoundRobin, SetOptions{SlowStart: time.Hour}, nil)
	s.Update(testSpecs(1))
	s.Update(testSpecs(2))
	s.Close()
	s.Backend("b00").Eject(time.Now().Add(time.Millisecond), "dial failures")
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timer.Stop() {
		t.Error("a timer was still pending after Close")
	}
}

func TestParsePolicyAndState(t *testing.T) {
	for _, p := range []Policy{RoundRobin, LeastConn, Random2, SourceHash} {
		if got, err := ParsePolicy(string(p)); err != nil || got != p {
			t.Errorf("ParsePolicy(%q) = %q, %v", p, got, err)
		}
	}
	if _, err := ParsePolicy("wrr"); err == nil {
		t.Error("ParsePolicy accepted wrr")
	}
	for _, st := range []State{StateUp, StateDown, StateDraining, StateMaint} {
		if got, err := ParseState(st.String()); err != nil || got != st {
			t.Errorf("ParseState(%q) = %v, %v", st, got, err)
		}
	}
	if _, err := ParseState("ready"); err == nil || errors.Unwrap(err) != nil {
		t.Errorf("ParseState(ready): %v", err)
	}
}

// Update against a model, over random lists with repeated keys in any
// order: the set holds one backend per key, sorted, with the first spec of
// its key, and a key present in consecutive lists keeps its Backend.
func TestUpdateMatchesModel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	s := newTestSet(t, RoundRobin, SetOptions{}, nil)
	type key struct{ id, addr string }
	prev := map[key]*Backend{}
	for step := range 300 {
		specs := make([]Spec, r.IntN(40))
		for i := range specs {
			specs[i] = Spec{ID: fmt.Sprintf("b%d", r.IntN(5)), Address: fmt.Sprintf("10.0.0.%d:80", r.IntN(3)), Weight: r.IntN(3)}
		}
		s.Update(specs)
		first := map[key]Spec{}
		for _, sp := range specs {
			if _, ok := first[key{sp.ID, sp.Address}]; !ok {
				first[key{sp.ID, sp.Address}] = sp
			}
		}
		got := s.Backends()
		if len(got) != len(first) {
			t.Fatalf("step %d: %d backends for %d keys", step, len(got), len(first))
		}
		next := map[key]*Backend{}
		for i, b := range got {
			k := key{b.ID(), b.Address()}
			if i > 0 && compareKey(got[i-1].ID(), got[i-1].Address(), &Spec{ID: k.id, Address: k.addr}) >= 0 {
				t.Fatalf("step %d: backends out of order at %d", step, i)
			}
			if b.Spec() != first[k] {
				t.Fatalf("step %d: %v has spec %+v, want the first of its key %+v", step, k, b.Spec(), first[k])
			}
			if old, ok := prev[k]; ok && old != b {
				t.Fatalf("step %d: %v got a new Backend", step, k)
			}
			next[k] = b
		}
		prev = next
	}
}

// TestUpdateOwnedTakesTheList: with UpdateOwned the backends' specs are
// the list's own elements, re-pointed at each update so that the list
// before can be freed; Update copies, so the caller may reuse its list.
func TestUpdateOwnedTakesTheList(t *testing.T) {
	set := NewSet("web", RoundRobin, SetOptions{})
	t.Cleanup(set.Close)
	first := []Spec{{ID: "a", Address: "10.0.0.1:80", Weight: 1}, {ID: "b", Address: "10.0.0.2:80", Weight: 1}}
	set.UpdateOwned(first)
	second := slices.Clone(first)
	second[1].Weight = 3
	set.UpdateOwned(second)
	for i, b := range set.Backends() {
		if b.spec.Load() != &second[i] {
			t.Errorf("backend %s does not hold the newest list's spec", b.ID())
		}
	}
	if w := set.Backend("b").Spec().Weight; w != 3 {
		t.Errorf("b's weight %d after the update, want 3", w)
	}

	mine := slices.Clone(second)
	set.Update(mine)
	mine[0].Weight, mine[1].Drain = 9, "changed after the call"
	if sp := set.Backend("a").Spec(); sp.Weight != 1 {
		t.Errorf("a's weight %d: Update kept the caller's list, which changed after", sp.Weight)
	}
	if st, _ := set.Backend("b").State(); st != StateUp {
		t.Errorf("b is %s: Update kept the caller's list, which changed after", st)
	}
}
