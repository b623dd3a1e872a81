package health

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tierlb/tierlb/backends"
	"github.com/tierlb/tierlb/internal/testkit"
)

var errRefused = fmt.Errorf("dial tcp 10.0.0.5:80: connect: %w", syscall.ECONNREFUSED)

func TestPassiveEjects(t *testing.T) {
	tests := []struct {
		name     string
		maxFails int
		events   string // f: failed dial, s: succeeded dial, c: canceled dial
		ejected  bool
	}{
		{"max_fails consecutive failures eject", 3, "fff", true},
		{"one short", 3, "ff", false},
		{"success resets the count", 3, "ffsff", false},
		{"count starts over after a success", 3, "ffsfff", true},
		{"client-canceled dials do not count", 3, "ffccc", false},
		{"max_fails 1", 1, "f", true},
		{"max_fails 0 is off", 0, "ffffffffff", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := newSet(t, "10.0.0.5:80")
			b := set.Backend("web-1")
			p := NewPassive(PassiveConfig{MaxFails: tt.maxFails, FailTimeout: time.Hour}, PassiveOptions{})
			for _, e := range tt.events {
				switch e {
				case 'f':
					p.DialFailed(b, errRefused)
				case 's':
					p.DialSucceeded(b)
				case 'c':
					p.DialFailed(b, fmt.Errorf("dial: %w", context.Canceled))
				}
			}
			if b.Ejected() != tt.ejected {
				t.Fatalf("ejected = %v, want %v", b.Ejected(), tt.ejected)
			}
			st, reason := b.State()
			if tt.ejected {
				want := fmt.Sprintf("passive: %d consecutive dial failures, last: %v", tt.maxFails, errRefused)
				if st != backends.StateDown || reason != want {
					t.Fatalf("state = %v %q, want down %q", st, reason, want)
				}
				if n := p.failures(b); n != 0 {
					t.Fatalf("count after ejection = %d, want 0", n)
				}
			} else if st != backends.StateUp {
				t.Fatalf("state = %v %q, want up", st, reason)
			}
		})
	}
}

// TestPassiveRecovers: the ejection ends by itself after fail_timeout.
func TestPassiveRecovers(t *testing.T) {
	set := newSet(t, "10.0.0.5:80")
	b := set.Backend("web-1")
	p := NewPassive(PassiveConfig{MaxFails: 2, FailTimeout: 50 * time.Millisecond}, PassiveOptions{})
	start := time.Now()
	p.DialFailed(b, errRefused)
	p.DialFailed(b, errRefused)
	if b.Up() || set.Pool().Len() != 0 {
		t.Fatal("ejected backend still in the pool")
	}
	testkit.Eventually(t, 2*time.Second, "the ejection to end", func() bool { return b.Up() && set.Pool().Len() == 1 })
	if took := time.Since(start); took < 50*time.Millisecond {
		t.Fatalf("back after %v, before fail_timeout", took)
	}
}

// TestPassiveConcurrentFailures: many dials failing at once during one
// outage eject the backend once.
func TestPassiveConcurrentFailures(t *testing.T) {
	set := newSet(t, "10.0.0.5:80")
	b := set.Backend("web-1")
	var ejections atomic.Int32
	p := NewPassive(PassiveConfig{MaxFails: 3, FailTimeout: time.Hour}, PassiveOptions{
		OnEject: func(*backends.Backend) { ejections.Add(1) },
	})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				p.DialFailed(b, errRefused)
			}
		})
	}
	wg.Wait()
	if n := ejections.Load(); n != 1 {
		t.Fatalf("%d ejections, want 1", n)
	}
}

func TestPassiveNilAndForget(t *testing.T) {
	set := newSet(t, "10.0.0.5:80")
	b := set.Backend("web-1")
	var nilP *Passive
	nilP.DialFailed(b, errRefused)
	nilP.DialSucceeded(b)
	nilP.Forget(b)
	nilP.SetConfig(PassiveConfig{})

	p := NewPassive(PassiveConfig{MaxFails: 3}, PassiveOptions{})
	p.DialFailed(b, errRefused)
	p.Forget(b)
	if n := p.failures(b); n != 0 {
		t.Fatalf("count after Forget = %d", n)
	}
	p.SetConfig(PassiveConfig{MaxFails: 1})
	p.DialFailed(b, errors.New("reset"))
	if !b.Ejected() {
		t.Fatal("SetConfig did not apply")
	}
}

// TestPassiveTriggersProbe: an ejection makes the monitor probe the backend
// at once instead of at the next interval (an hour away here), and the
// monitor forgets counts of backends that leave the set.
func TestPassiveTriggersProbe(t *testing.T) {
	noLeaks(t)
	srv := startTCP(t, blackhole)
	set := newSet(t, srv.addr())
	b := set.Backend("web-1")
	metrics, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMonitor(set, Config{Interval: time.Hour, Passive: PassiveConfig{MaxFails: 2, FailTimeout: time.Hour}}, Options{Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	runMonitor(t, m)
	testkit.Eventually(t, 2*time.Second, "the first probe", func() bool { return b.Up() && probes(metrics, "web-1") == 1 })
	m.Passive().DialFailed(b, errRefused)
	m.Passive().DialFailed(b, errRefused)
	st, reason := b.State()
	if st != backends.StateDown || !strings.HasPrefix(reason, "passive: 2 consecutive") {
		t.Fatalf("state = %v %q, want ejected", st, reason)
	}
	testkit.Eventually(t, 2*time.Second, "a probe triggered by the ejection", func() bool { return probes(metrics, "web-1") == 2 })

	m.Passive().DialFailed(b, errRefused)
	if m.Passive().failures(b) != 1 {
		t.Fatal("failure not counted")
	}
	set.Update(nil)
	testkit.Eventually(t, 2*time.Second, "the count to be forgotten", func() bool { return m.Passive().failures(b) == 0 })
}

// A backend that leaves its set takes its count of failed dials with it,
// with active checks off too; the members keep theirs.
func TestMonitorForgetsFailuresOfRemovedBackends(t *testing.T) {
	set := newSet(t, "127.0.0.1:1", "127.0.0.1:2")
	m, err := NewMonitor(set, Config{Type: TypeNone, Passive: PassiveConfig{MaxFails: 5}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	runMonitor(t, m)
	web1, web2 := set.Backend("web-1"), set.Backend("web-2")
	m.Passive().DialFailed(web1, errRefused)
	m.Passive().DialFailed(web2, errRefused)
	set.Update([]backends.Spec{web2.Spec()})
	testkit.Eventually(t, 2*time.Second, "web-1's failures forgotten", func() bool { return m.Passive().failures(web1) == 0 })
	if n := m.Passive().failures(web2); n != 1 {
		t.Fatalf("web-2, still a member, has %d failures, want 1", n)
	}
}
