//go:build linux

package health

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tierlb/tierlb/internal/testkit"
)

// countingChecker passes every probe and counts them; it is not a wire
// checker, so it runs on a goroutine of its own.
type countingChecker struct{ n atomic.Int64 }

func (c *countingChecker) Check(context.Context, string) error {
	c.n.Add(1)
	return nil
}

// blockingChecker holds every probe until its context ends.
type blockingChecker struct {
	started  chan struct{} // one value per probe begun
	returned atomic.Int64
}

func (c *blockingChecker) Check(ctx context.Context, _ string) error {
	c.started <- struct{}{}
	<-ctx.Done()
	c.returned.Add(1)
	return ctx.Err()
}

func loopOf(m *Monitor) *checkLoop {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.loop
}

// TestMonitorsShareOneLoop: two running monitors probe on the same loop;
// a stopped one probes no more while the other goes on; the loop ends with
// the last monitor.
func TestMonitorsShareOneLoop(t *testing.T) {
	noLeaks(t)
	srv := startTCP(t, blackhole)
	var ms [2]*Monitor
	var chks [2]*countingChecker
	var stops [2]func()
	checks := NewChecks()
	for i := range ms {
		m, err := NewMonitor(newSet(t, srv.addr()), Config{Type: TypeTCP, Interval: 10 * time.Millisecond}, Options{Checks: checks})
		if err != nil {
			t.Fatal(err)
		}
		chks[i] = &countingChecker{}
		m.checker = chks[i]
		ms[i] = m
		stops[i] = runMonitor(t, m)
	}
	testkit.Eventually(t, 5*time.Second, "both monitors probing", func() bool {
		return chks[0].n.Load() >= 3 && chks[1].n.Load() >= 3
	})
	if a, b := loopOf(ms[0]), loopOf(ms[1]); a == nil || a != b {
		t.Fatalf("monitors run on loops %p and %p, want one shared loop", a, b)
	}

	stops[0]()
	after := chks[0].n.Load()
	from := chks[1].n.Load()
	testkit.Eventually(t, 5*time.Second, "the other monitor probing on", func() bool { return chks[1].n.Load() >= from+5 })
	if n := chks[0].n.Load(); n != after {
		t.Fatalf("stopped monitor probed %d times after Run returned", n-after)
	}

	stops[1]()
	checks.mu.Lock()
	cur := checks.cur
	checks.mu.Unlock()
	if cur != nil {
		t.Fatal("the shared loop still runs with no monitor")
	}
}

// TestMonitorStopsMidProbe: a monitor stopped while the shared loop goes on
// for another cancels its probe in flight and awaits it, records no verdict
// from it, and leaves no socket of a wire probe open.
func TestMonitorStopsMidProbe(t *testing.T) {
	noLeaks(t)
	checks := NewChecks()
	other, err := NewMonitor(newSet(t, startTCP(t, blackhole).addr()), Config{Type: TypeTCP, Interval: 10 * time.Millisecond}, Options{Checks: checks})
	if err != nil {
		t.Fatal(err)
	}
	keep := &countingChecker{}
	other.checker = keep
	runMonitor(t, other)
	testkit.Eventually(t, 5*time.Second, "the other monitor probing", func() bool { return keep.n.Load() >= 1 })

	t.Run("goroutine probe", func(t *testing.T) {
		set := newSet(t, startTCP(t, blackhole).addr())
		m, err := NewMonitor(set, Config{Type: TypeTCP, Interval: 10 * time.Millisecond, Timeout: time.Hour}, Options{Checks: checks})
		if err != nil {
			t.Fatal(err)
		}
		chk := &blockingChecker{started: make(chan struct{}, 1)}
		m.checker = chk
		stop := runMonitor(t, m)
		select {
		case <-chk.started:
		case <-time.After(5 * time.Second):
			t.Fatal("no probe began")
		}
		stop()
		if n := chk.returned.Load(); n != 1 {
			t.Fatalf("Run returned with %d of 1 probe ended", n)
		}
		if v, _ := set.Backends()[0].Health(); v == nil || v.Reason != pendingReason {
			t.Fatalf("verdict %+v after a probe cut short, want still pending", v)
		}
	})

	t.Run("wire probe", func(t *testing.T) {
		silent := startTCP(t, blackhole)
		before := testkit.OpenFDs(t)
		m, err := NewMonitor(newSet(t, silent.addr(), silent.addr(), silent.addr()), Config{Type: TypeHTTP, Interval: 10 * time.Millisecond, Timeout: time.Hour}, Options{Checks: checks})
		if err != nil {
			t.Fatal(err)
		}
		stop := runMonitor(t, m)
		testkit.Eventually(t, 5*time.Second, "three probes in flight", func() bool { return silent.accepted.Load() >= 3 })
		stop()
		testkit.Eventually(t, 3*time.Second, "descriptors back to where they were", func() bool {
			return testkit.OpenFDs(t) <= before
		})
	})
	if loopOf(other) == nil {
		t.Fatal("the other monitor stopped")
	}
}

// TestLoopTimer: the loop's timerfd expires no earlier than the due time by
// the loop's clock, and arming it again (or disarming it) clears an expiry.
func TestLoopTimer(t *testing.T) {
	l, err := newCheckLoop()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.close)
	ready := func(msec int) bool {
		t.Helper()
		var evs [4]unix.EpollEvent
		n, err := unix.EpollWait(l.epfd, evs[:], msec)
		for err == unix.EINTR { // a signal, e.g. the runtime's preemption
			n, err = unix.EpollWait(l.epfd, evs[:], msec)
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs[:n] {
			if int(ev.Fd) == l.tfd {
				return true
			}
		}
		return false
	}
	for range 20 {
		due := time.Now().Add(2 * time.Millisecond)
		if err := l.arm(due); err != nil {
			t.Fatal(err)
		}
		if !ready(5000) {
			t.Fatal("timerfd did not expire within 5s")
		}
		if now := time.Now(); now.Before(due) {
			t.Fatalf("timerfd expired %v before the due time", due.Sub(now))
		}
		l.fired = true
		if err := l.arm(time.Time{}); err != nil {
			t.Fatal(err)
		}
		if ready(0) {
			t.Fatal("disarmed timerfd still readable")
		}
	}
}
