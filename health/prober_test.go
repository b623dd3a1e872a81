package health

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tierlb/tierlb/internal/testkit"
)

func TestJitterBounds(t *testing.T) {
	const interval = 100 * time.Millisecond
	tests := []struct {
		r    float64
		want time.Duration
	}{
		{0, 85 * time.Millisecond},
		{0.5, interval},
		{0.999999, 115 * time.Millisecond},
	}
	for _, tt := range tests {
		got := jitter(interval, tt.r)
		if d := got - tt.want; d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("jitter(%v, %v) = %v, want %v", interval, tt.r, got, tt.want)
		}
	}
}

// timingChecker records when each address is probed and how many probes of
// one address overlap; it can wrap a real checker.
type timingChecker struct {
	inner Checker // nil passes at once

	mu       sync.Mutex
	times    map[string][]time.Time
	inflight map[string]int
	maxIn    int
}

func newTimingChecker(inner Checker) *timingChecker {
	return &timingChecker{inner: inner, times: map[string][]time.Time{}, inflight: map[string]int{}}
}

func (c *timingChecker) Check(ctx context.Context, addr string) error {
	c.mu.Lock()
	c.times[addr] = append(c.times[addr], time.Now())
	c.inflight[addr]++
	c.maxIn = max(c.maxIn, c.inflight[addr])
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.inflight[addr]--
		c.mu.Unlock()
	}()
	if c.inner == nil {
		return nil
	}
	return c.inner.Check(ctx, addr)
}

func (c *timingChecker) probes(addr string) []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.times[addr])
}

// TestProbesSpread: backends added together are probed at once, then at
// random offsets across the interval, then every interval ±15%, never in
// lock step.
func TestProbesSpread(t *testing.T) {
	noLeaks(t)
	const n, interval = 12, 200 * time.Millisecond
	var addrs []string
	for i := range n {
		addrs = append(addrs, fmt.Sprintf("192.0.2.1:%d", 1000+i)) // never dialed
	}
	set := newSet(t, addrs...)
	m, err := NewMonitor(set, Config{Interval: interval}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	chk := newTimingChecker(nil)
	m.checker = chk
	runMonitor(t, m)
	testkit.Eventually(t, 10*time.Second, "three probes of every backend", func() bool {
		for _, a := range addrs {
			if len(chk.probes(a)) < 3 {
				return false
			}
		}
		return true
	})
	var seconds, steady []time.Duration
	for _, a := range addrs {
		p := chk.probes(a)
		seconds = append(seconds, p[1].Sub(p[0]))
		steady = append(steady, p[2].Sub(p[1]))
	}
	const slack = 150 * time.Millisecond // a loaded CI machine
	for i := range n {
		if seconds[i] < interval/10 || seconds[i] > interval+slack {
			t.Errorf("second probe %v after the first, want within [%v, %v]", seconds[i], interval/10, interval)
		}
		// ±15% of jitter, then the grid of interval/20 moves a start by up
		// to half a step either way.
		if steady[i] < interval*85/100-interval/40 || steady[i] > interval*115/100+interval/40+slack {
			t.Errorf("third probe %v after the second, want %v ±15%% (and half a grid step)", steady[i], interval)
		}
	}
	// With 12 uniform offsets over 90% of the interval, a spread under a
	// third of it has a probability below 1e-4.
	if spread := slices.Max(seconds) - slices.Min(seconds); spread < interval/3 {
		t.Errorf("second probes spread over %v only: %v", spread, seconds)
	}
	if spread := slices.Max(steady) - slices.Min(steady); spread < 5*time.Millisecond {
		t.Errorf("steady intervals all alike (%v): no jitter", steady)
	}
}

// TestOneProbeInFlight: a backend that never answers, probed more often
// than the timeout and asked for extra probes nonstop, never sees two
// probes at once.
func TestOneProbeInFlight(t *testing.T) {
	noLeaks(t)
	srv := startTCP(t, blackhole)
	set := newSet(t, srv.addr())
	b := set.Backend("web-1")
	m, err := NewMonitor(set, Config{Type: TypeHTTP, Interval: 5 * time.Millisecond, Timeout: 30 * time.Millisecond}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	chk := newTimingChecker(m.checker)
	m.checker = chk
	stop := runMonitor(t, m)
	var triggers atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for i := 0; i < 100_000 && ctx.Err() == nil; i++ {
			m.ProbeNow(b)
			triggers.Add(1)
			time.Sleep(100 * time.Microsecond) // pacing of the load, not a synchronization
		}
	}()
	testkit.Eventually(t, 5*time.Second, "several timed-out probes", func() bool { return len(chk.probes(srv.addr())) >= 5 })
	cancel()
	stop()
	chk.mu.Lock()
	defer chk.mu.Unlock()
	if chk.maxIn != 1 {
		t.Fatalf("%d probes in flight at once, want 1", chk.maxIn)
	}
	if triggers.Load() == 0 {
		t.Fatal("no probe was requested concurrently")
	}
}

func TestMetrics(t *testing.T) {
	var nilM *Metrics
	nilM.backendAdded("app", "web-1")
	nilM.checked("app", "web-1", true)
	nilM.backendRemoved("app", "web-1")

	reg := prometheus.NewRegistry()
	m1, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := NewMetrics(reg)
	if err != nil {
		t.Fatalf("second NewMetrics on one registry: %v", err)
	}
	m1.backendAdded("app", "web-1")
	m2.checked("app", "web-1", false)
	m2.checked("app", "web-1", false)
	if ok, fail := m1.counts("app", "web-1"); fail != 2 || ok != 0 {
		t.Fatalf("ok, fail = %d, %d, want 0, 2 (shared collector)", ok, fail)
	}
	m1.backendRemoved("app", "web-1")
	if n := testutil.CollectAndCount(m1.checks); n != 0 {
		t.Fatalf("%d series after removal", n)
	}

	// A different collector under the same name is a real conflict.
	bad := prometheus.NewRegistry()
	bad.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "tierlb_health_checks_total", Help: "x"}))
	if _, err := NewMetrics(bad); err == nil {
		t.Fatal("conflicting registration accepted")
	}
}

func TestJoiningBackendIsProbedOnAShortBackoff(t *testing.T) {
	p := &prober{cfg: &Config{Interval: 300 * time.Millisecond}, rand: func() float64 { return 0.5 }}
	p.joining, p.spread = true, true
	var got []time.Duration
	for range 6 {
		got = append(got, p.nextDelay())
	}
	want := []time.Duration{25, 50, 100, 200, 300, 300}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("waits while joining = %v, want %v ms", got, want)
		}
	}
	p.joining = false
	if d := p.nextDelay(); d < 30*time.Millisecond || d > 300*time.Millisecond {
		t.Fatalf("first wait after joining = %v, want the spread (10-100%% of the interval)", d)
	}
}
