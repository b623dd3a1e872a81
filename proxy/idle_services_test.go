package proxy

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tierlb/tierlb/internal/testkit"
)

// TestIdleServicesMemory guards what an idle service costs a process with
// hundreds of them: live heap (settings, series, listener, pool handle)
// and no goroutine of its own once Start has registered its listener.
func TestIdleServicesMemory(t *testing.T) {
	const n = 200
	loops := testLoops(t, 2)
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	set := staticSet(t, "127.0.0.1:1")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	start := func(i int) *Service {
		s, err := NewService(Config{Name: fmt.Sprintf("svc%d", i), Listen: "127.0.0.1:0"}, set, Options{Metrics: m, Loops: loops})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer scancel()
			s.Shutdown(sctx)
		})
		if err := s.Start(ctx); err != nil {
			t.Fatal(err)
		}
		return s
	}
	start(-1) // the loops' and the registry's first growth
	heap0, g0 := liveHeap(), runtime.NumGoroutine()
	keep := make([]*Service, n)
	for i := range keep {
		keep[i] = start(i)
	}
	heap1 := liveHeap()
	runtime.KeepAlive(keep)
	per := float64(int64(heap1)-int64(heap0)) / n
	t.Logf("%.0f bytes of live heap per idle service (%d services)", per, n)
	// Measured ~2.5 kB (Prometheus children alone took ~10 kB).
	if per > 6<<10 {
		t.Errorf("live heap per idle service = %.0f bytes, want at most %d", per, 6<<10)
	}
	// Start's goroutines are gone once it returns; allow for unrelated ones.
	testkit.Eventually(t, 5*time.Second, "no goroutine per service", func() bool {
		return runtime.NumGoroutine() < g0+n/10
	})
	for _, s := range keep {
		select {
		case <-s.Done():
			t.Fatalf("%s: Done closed while serving", s.name)
		default:
		}
	}
	cancel()
	testkit.Eventually(t, 5*time.Second, "Done closed once ctx ends", func() bool {
		for _, s := range keep {
			select {
			case <-s.Done():
			default:
				return false
			}
		}
		return true
	})
}
