package admin

import (
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/tierlb/tierlb/backends"
)

var t0 = time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)

// at is the fake clock of the history tests: sample k happens k intervals
// after t0.
func at(k int) time.Time { return t0.Add(time.Duration(k) * HistoryInterval) }

func TestHistoryRates(t *testing.T) {
	set := newTestSet(t, "app", "10.0.0.1:80", "10.0.0.2:80")
	// Since start, per service: the data path's counters (TCP refusals,
	// UDP drops) as cmd/ hands them over.
	rejected, dropped := map[string]uint64{}, map[string]uint64{}
	read := func(out map[string]uint64) {
		for _, counts := range []map[string]uint64{rejected, dropped} {
			for name, n := range counts {
				out[name] += n
			}
		}
	}
	h := newHistory(ServiceList{{Name: "app", Set: set}}, read, nil)
	b1, b2 := set.Backend("10.0.0.1:80"), set.Backend("10.0.0.2:80")

	// Counters from before the first sample are the baseline, not a rate.
	b1.ConnOpened()
	b1.ConnClosed(1000, 1000)
	h.sample(at(0))
	if r := h.serviceRates("app"); r != nil {
		t.Fatalf("rates after one sample: %+v, want none", r)
	}

	for range 50 {
		b1.ConnOpened()
	}
	b1.AddBytes(10_000, 40_000)
	b2.CountConnectError(backends.DialRefused)
	b2.CountConnectError(backends.DialTimeout)
	rejected["app"] += 3
	dropped["app"] += 5
	rejected["other"] += 100 // another service's
	h.sample(at(1))

	check := func(name string, got *Rates, want Rates) {
		t.Helper()
		if got == nil || *got != want {
			t.Errorf("%s rates %+v, want %+v", name, got, want)
		}
	}
	check("web-1", h.backendRates("app", "10.0.0.1:80"), Rates{ConnsPerS: 5, BytesPerS: ByteRates{1000, 4000}, WindowS: 10})
	check("web-2", h.backendRates("app", "10.0.0.2:80"), Rates{ErrorsPerS: 0.2, WindowS: 10})
	check("app", h.serviceRates("app"), Rates{ConnsPerS: 5, BytesPerS: ByteRates{1000, 4000}, ErrorsPerS: 1, WindowS: 10})

	// A sample 20 s later: rates are over the time that passed.
	for range 10 {
		b2.ConnOpened()
	}
	h.sample(at(3))
	check("web-2 after 20 s", h.backendRates("app", "10.0.0.2:80"), Rates{ConnsPerS: 0.5, WindowS: 20})
	check("web-1 idle", h.backendRates("app", "10.0.0.1:80"), Rates{WindowS: 20})

	// A clock that did not move takes no sample.
	h.sample(at(3))
	if h.n != 3 {
		t.Errorf("%d samples after a repeated instant, want 3", h.n)
	}

	// A backend that leaves takes its series along and does not read as
	// a drop in the service's rates; one that comes counts from zero.
	set.Update([]backends.Spec{{ID: "10.0.0.1:80", Address: "10.0.0.1:80"}, {ID: "10.0.0.3:80", Address: "10.0.0.3:80"}})
	b3 := set.Backend("10.0.0.3:80")
	for range 20 {
		b3.ConnOpened()
	}
	h.sample(at(4))
	if h.backendRates("app", "10.0.0.2:80") != nil {
		t.Error("a removed backend still has rates")
	}
	check("new web-3", h.backendRates("app", "10.0.0.3:80"), Rates{ConnsPerS: 2, WindowS: 10})
	check("app after the change", h.serviceRates("app"), Rates{ConnsPerS: 2, WindowS: 10})
	if len(h.byBackend) != 2 {
		t.Errorf("%d backend series, want 2", len(h.byBackend))
	}

	// A service that goes takes its series along.
	h.services = ServiceList{}
	h.sample(at(5))
	if len(h.byBackend) != 0 || len(h.byService) != 0 || len(h.rejected) != 0 {
		t.Errorf("series left after every service went: %d backends, %d services, %d rejection counts", len(h.byBackend), len(h.byService), len(h.rejected))
	}
}

// TestHistoryCounterReset: a total that goes back (a backend of the same
// id replaced between two samples) counts as a reset, as Prometheus's
// rate() reads one: the new total is the growth.
func TestHistoryCounterReset(t *testing.T) {
	set := newTestSet(t, "app", "10.0.0.1:80")
	h := newHistory(ServiceList{{Name: "app", Set: set}}, nil, nil)
	for range 100 {
		set.Backend("10.0.0.1:80").ConnOpened()
	}
	h.sample(at(0))
	set.Update([]backends.Spec{{ID: "10.0.0.1:80", Address: "10.0.0.9:80"}}) // same id, a new backend
	for range 30 {
		set.Backend("10.0.0.1:80").ConnOpened()
	}
	h.sample(at(1))
	if r := h.backendRates("app", "10.0.0.1:80"); r == nil || r.ConnsPerS != 3 {
		t.Fatalf("rates after a reset %+v, want 3 conns/s", r)
	}
}

// TestHistoryRingBound: whatever the number of samples, a series keeps the
// last HistorySlots in order, and an idle series drops its ring after a
// whole window of zeros.
func TestHistoryRingBound(t *testing.T) {
	set := newTestSet(t, "app", "10.0.0.1:80", "10.0.0.2:80")
	h := newHistory(ServiceList{{Name: "app", Set: set}}, nil, nil)
	busy := set.Backend("10.0.0.1:80")
	h.sample(at(0))
	if _, ok := h.backendTrend("app", "10.0.0.1:80"); ok {
		t.Fatal("a trend after the baseline alone")
	}
	const samples = 3*HistorySlots + 7
	for k := 1; k <= samples; k++ {
		for range k {
			busy.ConnOpened() // k connections in sample k: k/10 per second
		}
		h.sample(at(k))
		tr, ok := h.backendTrend("app", "10.0.0.1:80")
		if !ok {
			t.Fatalf("sample %d: no trend", k)
		}
		if want := max(HistorySlots-k, 0); tr.first != want {
			t.Fatalf("sample %d: trend starts at point %d, want %d", k, tr.first, want)
		}
	}
	tr, _ := h.backendTrend("app", "10.0.0.1:80")
	for i, p := range tr.points {
		k := samples - HistorySlots + 1 + i
		want := float64(k) / 10
		if got := float64(p[rateConns]); math.Abs(got-want)/want > 1.0/128 {
			t.Fatalf("point %d (sample %d): %g conns/s, want %g within bfloat16's precision", i, k, got, want)
		}
	}
	if s := h.byBackend[backendKey{"app", "10.0.0.1:80"}]; len(s.ring) != HistorySlots {
		t.Errorf("ring of %d slots, want %d", len(s.ring), HistorySlots)
	}
	if k := (backendKey{"app", "10.0.0.2:80"}); !listed(h.listed, k) || h.byBackend[k] != nil || len(h.young) != 0 {
		t.Error("a backend that never counted anything holds a series")
	}
	idle, ok := h.backendTrend("app", "10.0.0.2:80")
	if !ok || idle.first != 0 || idle.points != [HistorySlots][numRates]float32{} {
		t.Errorf("idle trend %+v %v, want a full window of zeros", idle.first, ok)
	}

	// The busy backend goes quiet: its ring stays while the window shows
	// traffic, and goes once the window is all zeros.
	for k := samples + 1; k < samples+HistorySlots; k++ {
		h.sample(at(k))
	}
	if h.byBackend[backendKey{"app", "10.0.0.1:80"}].ring == nil {
		t.Fatal("ring dropped while the window still shows traffic")
	}
	h.sample(at(samples + HistorySlots))
	if h.byBackend[backendKey{"app", "10.0.0.1:80"}].ring != nil {
		t.Fatal("ring kept after a whole window of zeros")
	}
}

// TestHistoryQuietBackendJoinsLate: a backend that joins after the baseline
// and counts nothing has no rates until a sample sees it, then zeros, and a
// trend from the sample that first saw it, kept when it starts counting;
// what stands for its series goes once its whole window is zeros.
func TestHistoryQuietBackendJoinsLate(t *testing.T) {
	set := newTestSet(t, "app", "10.0.0.1:80")
	h := newHistory(ServiceList{{Name: "app", Set: set}}, nil, nil)
	for k := range 4 {
		h.sample(at(k))
	}
	set.Update([]backends.Spec{{ID: "10.0.0.1:80", Address: "10.0.0.1:80"}, {ID: "late", Address: "10.0.0.2:80"}, {ID: "later", Address: "10.0.0.3:80"}})
	if r := h.backendRates("app", "late"); r != nil {
		t.Fatalf("rates %+v before a sample saw the backend, want none", r)
	}
	h.sample(at(4))
	if r := h.backendRates("app", "late"); r == nil || *r != (Rates{WindowS: 10}) {
		t.Fatalf("rates %+v of a quiet backend, want zeros", r)
	}
	// Sample 4 is point HistorySlots-1 of the window; the trend starts there.
	if tr, ok := h.backendTrend("app", "late"); !ok || tr.first != HistorySlots-1 {
		t.Fatalf("trend of a backend first seen at the latest sample starts at %d (%v), want %d", tr.first, ok, HistorySlots-1)
	}
	set.Backend("late").ConnOpened()
	h.sample(at(5))
	if tr, ok := h.backendTrend("app", "late"); !ok || tr.first != HistorySlots-2 || math.Abs(float64(tr.points[HistorySlots-1][rateConns])-0.1) > 0.001 {
		t.Fatalf("trend once counting starts at %d (%v) ending at %v conns/s, want %d and 0.1", tr.first, ok, tr.points[HistorySlots-1][rateConns], HistorySlots-2)
	}
	if _, ok := h.young[backendKey{"app", "late"}]; ok {
		t.Error("a backend with a series still stands among the quiet")
	}
	for k := 6; k < 4+HistorySlots; k++ {
		h.sample(at(k))
		tr, _ := h.backendTrend("app", "later")
		if want := max(HistorySlots-1-(k-4), 0); tr.first != want {
			t.Fatalf("sample %d: quiet trend starts at %d, want %d", k, tr.first, want)
		}
	}
	if len(h.young) != 0 {
		t.Errorf("%d quiet backends remembered once their window is all zeros", len(h.young))
	}
	if tr, ok := h.backendTrend("app", "later"); !ok || tr.first != 0 {
		t.Errorf("trend of an old quiet backend starts at %d (%v), want 0", tr.first, ok)
	}
}

// TestHistoryMemory measures what the history holds for 10,000 backends,
// idle and busy, for the README's bound.
func TestHistoryMemory(t *testing.T) {
	services := scaleServices(t, 100, 100)
	h := newHistory(services, nil, nil)
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	h.sample(at(0))
	h.sample(at(1))
	idle := heap()
	for _, info := range services {
		for _, b := range info.Set.Backends() {
			b.ConnOpened()
		}
	}
	h.sample(at(2))
	busy := heap()
	perIdle := float64(idle-before) / 10_000
	perBusy := float64(busy-before) / 10_000
	t.Logf("history of 10,000 backends: %.0f bytes each while idle, %.0f with traffic", perIdle, perBusy)
	// The ring is 90 samples of 4 bfloat16; the rest is the series and
	// its map entry. A backend that never counted anything holds only
	// its ID in its service's listing (16 B; 25 measured).
	if perBusy > 1200 {
		t.Errorf("%.0f bytes per busy backend, want at most 1200", perBusy)
	}
	if perIdle > 40 {
		t.Errorf("%.0f bytes per idle backend, want at most 40", perIdle)
	}
	runtime.KeepAlive(h)
}

func TestBFloat16(t *testing.T) {
	for _, f := range []float32{0, 1, 0.1, 3.14159, 1234.5678, 1e9, 5e12} {
		got := fromBFloat16(toBFloat16(f))
		if f == 0 && got != 0 || f != 0 && math.Abs(float64(got-f))/float64(f) > 1.0/256 {
			t.Errorf("bfloat16(%g) = %g, more than half a step off", f, got)
		}
	}
}
