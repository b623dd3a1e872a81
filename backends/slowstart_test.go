package backends

import (
	"net/netip"
	"testing"
	"time"

	"github.com/tierlb/tierlb/internal/testkit"
)

func TestRampWeight(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const window = time.Minute
	tests := []struct {
		name    string
		weight  int
		start   time.Time
		elapsed time.Duration
		window  time.Duration
		want    int
		due     time.Duration // after start; 0: no step due
	}{
		{"no ramp for a zero start", 3, time.Time{}, 0, window, 3 * rampSteps, 0},
		{"slow start off", 3, start, 0, 0, 3 * rampSteps, 0},
		{"fresh gets a trickle", 1, start, 0, window, 1, 3 * time.Second},
		{"first step", 2, start, 3 * time.Second, window, 2, 6 * time.Second},
		{"halfway", 2, start, 30 * time.Second, window, 20, 33 * time.Second},
		{"last step", 1, start, 59 * time.Second, window, 19, window},
		{"done", 4, start, window, window, 4 * rampSteps, 0},
		{"clock went back", 4, start, -time.Second, window, 4 * rampSteps, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := start.Add(tt.elapsed)
			w, due := rampWeight(tt.weight, tt.start, now, tt.window)
			if w != tt.want {
				t.Errorf("weight %d, want %d", w, tt.want)
			}
			switch {
			case tt.due == 0 && !due.IsZero():
				t.Errorf("next step due at %v, want none", due)
			case tt.due != 0 && !due.Equal(start.Add(tt.due)):
				t.Errorf("next step due %v after start, want %v", due.Sub(start), tt.due)
			}
		})
	}
	// Windows shorter than the step count used to divide by zero.
	for _, window := range []time.Duration{1, 7, 19} {
		w, due := rampWeight(1, start, start.Add(window/2), window)
		if w < 1 || !due.After(start.Add(window/2)) {
			t.Errorf("window %v: weight %d due %v", window, w, due)
		}
	}
}

// weightOf returns b's effective weight in the current pool (0: not in it).
func weightOf(s *Set, id string) int {
	p := s.Pool()
	for i, b := range p.Members() {
		if b.ID() == id {
			return p.Weight(i)
		}
	}
	return 0
}

// Backends present at startup take their full share at once; one added
// later ramps linearly, in rampSteps steps, over the window.
func TestSlowStartRampsAddedBackend(t *testing.T) {
	clock := newFakeClock()
	s := newTestSet(t, RoundRobin, SetOptions{SlowStart: time.Minute}, clock)
	s.Update(testSpecs(2))
	for _, id := range []string{"b00", "b01"} {
		if w := weightOf(s, id); w != rampSteps {
			t.Fatalf("startup backend %s has weight %d, want full (%d)", id, w, rampSteps)
		}
	}
	s.Update(testSpecs(3))
	steps := []struct {
		at   time.Duration
		want int
	}{{0, 1}, {15 * time.Second, 5}, {30 * time.Second, 10}, {59 * time.Second, 19}, {time.Minute, rampSteps}}
	var elapsed time.Duration
	for _, st := range steps {
		clock.Advance(st.at - elapsed)
		elapsed = st.at
		s.rebuild() // what the set's timer does at each step
		if w := weightOf(s, "b02"); w != st.want {
			t.Errorf("after %v the new backend has weight %d, want %d", st.at, w, st.want)
		}
		// Its share of picks follows: weights 20:20:w over whole periods.
		p := s.Pool()
		period := len(p.schedule)
		if period == 0 {
			period = 3
		}
		counts := countPicks(p, period*10)
		if got, want := counts["b02"], st.want*10*period/(2*rampSteps+st.want); got != want {
			t.Errorf("after %v the new backend got %d of %d picks, want %d", st.at, got, period*10, want)
		}
	}
}

// A backend that recovers ramps again; one that joins a pool left empty (a
// service scaled from zero) does not, since it has no one to share with.
func TestSlowStartRecoveryAndEmptyPool(t *testing.T) {
	clock := newFakeClock()
	s := newTestSet(t, LeastConn, SetOptions{SlowStart: 10 * time.Second}, clock)
	s.Update(testSpecs(3))
	b := s.Backend("b01")
	b.SetHealth(false, "refused")
	if w := weightOf(s, "b01"); w != 0 {
		t.Fatalf("down backend still in the pool with weight %d", w)
	}
	clock.Advance(time.Second)
	b.SetHealth(true, "ok")
	if w := weightOf(s, "b01"); w != 1 {
		t.Errorf("recovered backend has weight %d, want 1 (ramp start)", w)
	}
	clock.Advance(5 * time.Second)
	s.rebuild()
	if w := weightOf(s, "b01"); w != rampSteps/2 {
		t.Errorf("recovered backend halfway has weight %d, want %d", w, rampSteps/2)
	}
	// leastconn counts the ramp: with b00 and b02 at 10 connections each,
	// b01 at half weight gets new connections only below 5.
	for _, id := range []string{"b00", "b02"} {
		for range 10 {
			s.Backend(id).ConnOpened()
		}
	}
	for range 4 {
		if got := pick(s.Pool(), netip.Addr{}); got != b {
			t.Fatalf("picked %s, want the ramping b01 while it has %d open", got.ID(), b.Active())
		}
		b.ConnOpened()
	}
	b.ConnOpened()
	if got := pick(s.Pool(), netip.Addr{}); got == b {
		t.Fatalf("picked ramping b01 with %d open at half weight against 10 at full", b.Active())
	}

	s.Update(nil)
	s.Update(testSpecs(2))
	for _, id := range []string{"b00", "b01"} {
		if w := weightOf(s, id); w != rampSteps {
			t.Errorf("backend %s added to an empty pool has weight %d, want full", id, w)
		}
	}
}

// The set's own timer drives the ramp to the end in real time.
func TestSlowStartTimerFinishesRamp(t *testing.T) {
	s := newTestSet(t, RoundRobin, SetOptions{SlowStart: 100 * time.Millisecond}, nil)
	s.Update(testSpecs(1))
	s.Update(testSpecs(2))
	if w := weightOf(s, "b01"); w >= rampSteps {
		t.Fatalf("added backend starts at weight %d, want a ramp", w)
	}
	testkit.Eventually(t, 5*time.Second, "the ramp to finish", func() bool { return weightOf(s, "b01") == rampSteps })
}
