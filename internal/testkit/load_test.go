package testkit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPacerStopsAtCount(t *testing.T) {
	p := NewPacer(t, Pace{Rate: ShortRate, Count: 5, Within: time.Minute})
	n := 0
	for p.Next(context.Background()) {
		n++
	}
	if n != 5 {
		t.Fatalf("%d slots, want 5", n)
	}
}

func TestPacerStopsAtTime(t *testing.T) {
	p := NewPacer(t, Pace{Rate: ShortRate, Count: PortBudget, Within: 20 * time.Millisecond})
	start := time.Now()
	n := 0
	for p.Next(context.Background()) {
		n++
	}
	// 20 ms at 2,000/s: at most 40 slots, and none after the deadline.
	if n > 40 {
		t.Fatalf("%d slots in 20ms at %d/s", n, ShortRate)
	}
	if took := time.Since(start); took < 20*time.Millisecond-p.interval {
		t.Fatalf("gave up after %v, before the 20ms were spent", took)
	}
}

// The rate holds for all workers together: 40 slots at 2,000/s take at
// least 39 intervals however many workers ask. Only a lower bound, which
// a slower machine cannot break.
func TestPacerRateIsShared(t *testing.T) {
	p := NewPacer(t, Pace{Rate: ShortRate, Count: 40, Within: time.Minute})
	var n atomic.Int64
	start := time.Now()
	l := &Load{}
	for range 8 {
		l.wg.Go(func() {
			for p.Next(context.Background()) {
				n.Add(1)
			}
		})
	}
	l.wg.Wait()
	if n.Load() != 40 {
		t.Fatalf("%d slots, want 40", n.Load())
	}
	if took, want := time.Since(start), 39*p.interval; took < want {
		t.Fatalf("40 slots in %v, want at least %v at %d/s", took, want, ShortRate)
	}
}

func TestPacerEndsWithContext(t *testing.T) {
	p := NewPacer(t, Pace{Rate: 1, Count: 10, Within: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	if !p.Next(ctx) {
		t.Fatal("the first slot is due at once")
	}
	cancel()
	if p.Next(ctx) {
		t.Fatal("a slot after the context ended")
	}
}

// fatalRecorder records Fatalf instead of ending the test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper()                        {}
func (f *fatalRecorder) Fatalf(format string, a ...any) { f.msg = fmt.Sprintf(format, a...) }

func TestNewPacerRefusesPacesThatExhaustPorts(t *testing.T) {
	for _, tt := range []struct {
		name string
		pace Pace
		want string
	}{
		{"no rate", Pace{Count: 10, Within: time.Second}, "must all be positive"},
		{"no count", Pace{Rate: 10, Within: time.Second}, "must all be positive"},
		{"no time", Pace{Rate: 10, Count: 10}, "must all be positive"},
		{"short loop too fast", Pace{Rate: ShortRate + 1, Count: PortBudget, Within: time.Second}, "could exhaust the local ports"},
		{"long loop at the short rate", Pace{Rate: ShortRate, Count: PortBudget + 1, Within: time.Hour}, "at most 200/s"},
		{"long loop sustained", Pace{Rate: SustainedRate, Count: 1 << 40, Within: time.Hour}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := &fatalRecorder{TB: t}
			p := NewPacer(rec, tt.pace)
			if tt.want == "" {
				if rec.msg != "" || p == nil {
					t.Fatalf("refused: %s", rec.msg)
				}
				return
			}
			if p != nil || !strings.Contains(rec.msg, tt.want) {
				t.Fatalf("got %v, %q; want nil and an error containing %q", p, rec.msg, tt.want)
			}
		})
	}
}

func TestLoadCounts(t *testing.T) {
	var calls atomic.Int64
	l := StartLoad(t, 4, Pace{Rate: ShortRate, Count: 30, Within: time.Minute}, func(context.Context) error {
		if calls.Add(1)%3 == 0 {
			return errors.New("refused")
		}
		return nil
	})
	l.Wait()
	ok, failed := l.Counts()
	if ok != 20 || failed != 10 {
		t.Fatalf("ok %d, failed %d; want 20 and 10", ok, failed)
	}
	if got := strings.Count(l.LastErrors(), "refused"); got != 5 {
		t.Fatalf("last errors %q: want the last 5", l.LastErrors())
	}
}
