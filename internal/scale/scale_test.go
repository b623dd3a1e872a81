package scale

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/tierlb/tierlb/internal/testkit"
)

var binary string

func TestMain(m *testing.M) {
	bin, remove, err := testkit.BuildBinary("../../cmd/tierlb")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = bin
	code := m.Run()
	remove()
	os.Exit(code)
}

// TestDiscoveryAtScale runs the real binary on 2,000 containers over 20
// services and a storm of 400 container events/s for 3s. Its bounds hold
// on any machine because they count what speed cannot change (Engine API
// requests, events dropped) or allow several times the CPU a loaded
// two-core machine shows. Lag is wall time: on a machine busy with other
// tests a change can wait seconds behind the scheduler, not behind
// tierlb (seen in CI with the engine tests beside it: p50 1s, 212 starts
// overtaken by their stop, at a third of the CPU a quiet run takes), so
// it is logged here and held to the goals (routed in 2s, lag under 100ms
// at 10,000) by the opt-in full run and bench/scale.
func TestDiscoveryAtScale(t *testing.T) {
	f, err := Run(t.Context(), Params{Binary: binary, Containers: 2000, Services: 20, Stopped: 100,
		StormRate: 400, StormFor: 3 * time.Second, StepGap: time.Second, RestFor: 2 * time.Second,
		Samples: 5, RoutedWithin: 45 * time.Second, Progress: func(s string) { t.Log(s) }})
	if err != nil {
		t.Fatal(err)
	}
	// One list, no inspect per container: the start costs the same
	// requests at any K.
	start := f.StartRequests
	if start["GET /containers/json"] != 1 || start["GET /containers/{id}/json"] > 1 {
		t.Errorf("requests at start: %v; want one list and at most one inspect (its own container)", start)
	}
	if f.RoutedCPU > 2*time.Second {
		t.Errorf("routing 2,000 backends took %s of CPU, want at most 2s", f.RoutedCPU)
	}
	s := f.Storm
	if s.Dropped > 0 {
		t.Errorf("storm: %d events dropped", s.Dropped)
	}
	if s.Changes < s.Events/3 {
		t.Errorf("storm: %d changes expected from %d events: the harness lost track", s.Changes, s.Events)
	}
	if len(s.Missed) > 0 {
		t.Logf("storm: %d changes not seen before their next step (%v)", len(s.Missed), s.Missed[:min(5, len(s.Missed))])
	}
	if perEvent := s.CPU / time.Duration(max(1, s.Events)); perEvent > 2*time.Millisecond {
		t.Errorf("storm: %s of CPU per event (%s for %d), want at most 2ms", perEvent, s.CPU, s.Events)
	}
	starts := s.Events * 4 / eventsPerCycle // the cycle's 16 events hold 4 starts
	if n := s.Requests["GET /containers/{id}/json"]; n > starts || s.Requests["GET /containers/json"] > 0 {
		t.Errorf("storm requests %v: want no list and at most one inspect per start (%d)", s.Requests, starts)
	}
	if len(f.RestRequests) > 0 {
		t.Errorf("at rest for %s: requests %v, want none", f.RestFor, f.RestRequests)
	}
	for _, w := range f.Warnings {
		t.Errorf("tierlb warned: %s", w)
	}
	t.Logf("K=2000: routed in %s (CPU %s), RSS %d KiB; storm %d events, lag p50 %s p99 %s max %s, CPU %s",
		f.Routed, f.RoutedCPU, f.RSS>>10, s.Events, s.Quantile(0.5), s.Quantile(0.99), s.Quantile(1), s.CPU)
}

// TestDiscoveryAtScaleFull is the goal at 10,000 containers over 100
// services: every backend routed within 2s of tierlb's start, a storm of
// 1,000 container events/s for 10s applied with no change later than
// 100ms. It needs a machine that is not shared with other loads: set
// TIERLB_SCALE_FULL=1 to run it (`go run ./bench/scale` gives the same
// figures with more detail).
func TestDiscoveryAtScaleFull(t *testing.T) {
	if os.Getenv("TIERLB_SCALE_FULL") == "" {
		t.Skip("set TIERLB_SCALE_FULL=1 to run discovery at 10,000 containers")
	}
	f, err := Run(t.Context(), Params{Binary: binary, Containers: 10000, Services: 100, Stopped: 700,
		StormRate: 1000, StormFor: 10 * time.Second, Samples: 10, Progress: func(s string) { t.Log(s) }})
	if err != nil {
		t.Fatal(err)
	}
	if f.Routed > 2*time.Second {
		t.Errorf("every backend routed after %s, want at most 2s", f.Routed)
	}
	s := f.Storm
	if worst := s.Quantile(1); worst > 100*time.Millisecond || len(s.Missed) > 0 {
		t.Errorf("storm: max lag %s, %d changes over 100ms, %d never applied; want none late", worst, s.Over(100*time.Millisecond), len(s.Missed))
	}
	if per := float64(f.RSS) / 10000; per > 10<<10 {
		t.Errorf("RSS %d MiB: %.0f B per backend over all", f.RSS>>20, per)
	}
	t.Logf("K=10000: routed in %s (CPU %s), RSS %d MiB; storm %d events, lag p50 %s p99 %s max %s, CPU %s",
		f.Routed, f.RoutedCPU, f.RSS>>20, s.Events, s.Quantile(0.5), s.Quantile(0.99), s.Quantile(1), s.CPU)
}
