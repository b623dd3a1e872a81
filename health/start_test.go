package health

import (
	"context"
	"log/slog"
	"maps"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/tierlb/tierlb/internal/testkit"
)

// TestMonitorStartKeepsNoGoroutine: monitors started with Start hold no
// goroutine while they run, follow their set's membership at once, and
// all end, with the shared loop, once ctx ends.
func TestMonitorStartKeepsNoGoroutine(t *testing.T) {
	noLeaks(t)
	const n = 100
	srv := startTCP(t, blackhole)
	checks := NewChecks()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	start := func(typ string) *Monitor {
		m, err := NewMonitor(newSet(t, srv.addr()), Config{Type: typ, Interval: time.Hour}, Options{Checks: checks})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
		return m
	}
	first := start(TypeTCP) // starts the shared loop
	g0 := runtime.NumGoroutine()
	ms := []*Monitor{first}
	for i := range n {
		ms = append(ms, start([]string{TypeNone, TypeTCP}[i%2]))
	}
	if g := runtime.NumGoroutine(); g > g0+5 {
		t.Errorf("%d goroutines with %d monitors more, %d with one", g, n, g0)
	}

	// The set calls the monitor from Update: the prober exists on return.
	first.set.Update(specs(srv.addr(), startTCP(t, blackhole).addr()))
	if got := len(probersOf(first)); got != 2 {
		t.Errorf("%d probers after a backend joined, want 2", got)
	}
	first.set.Update(specs(srv.addr()))
	if got := len(probersOf(first)); got != 1 {
		t.Errorf("%d probers after a backend left, want 1", got)
	}
	for _, m := range ms {
		select {
		case <-m.Done():
			t.Fatal("Done closed while running")
		default:
		}
	}

	cancel()
	for _, m := range ms {
		select {
		case <-m.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("Done not closed 5s after ctx ended")
		}
		if got := len(probersOf(m)); got != 0 {
			t.Fatalf("%d probers left after Done", got)
		}
	}
	checks.mu.Lock()
	cur := checks.cur
	checks.mu.Unlock()
	if cur != nil {
		t.Fatal("the shared loop still runs with no monitor")
	}
	// Stopped, it starts again; a context already ended stops it at once.
	ended, end := context.WithCancel(context.Background())
	end()
	if err := first.Start(ended); err != nil {
		t.Fatal(err)
	}
	select {
	case <-first.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed for a context ended before Start")
	}
}

// TestMonitorLoopBreaks: a check loop whose epoll set fails stops its
// monitors with the error and logs it; a new Start runs on a new loop.
func TestMonitorLoopBreaks(t *testing.T) {
	noLeaks(t)
	srv := startTCP(t, blackhole)
	logs := &logRecorder{}
	m, err := NewMonitor(newSet(t, srv.addr()), Config{Type: TypeTCP, Interval: 10 * time.Millisecond}, Options{Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	go func() { res <- m.Run(context.Background()) }()
	var loop *checkLoop
	testkit.Eventually(t, 2*time.Second, "running", func() bool { loop = loopOf(m); return loop != nil })
	loop.ep.Close() // what a failing epoll_wait does to the loop
	select {
	case err := <-res:
		if err == nil {
			t.Fatal("Run = nil after the loop broke, want its error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return 5s after the loop broke")
	}
	if len(logs.messages("health monitor stopped")) == 0 {
		t.Error("the loop's failure was not logged")
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if l := loopOf(m); l == nil || l == loop {
		t.Errorf("restarted on loop %p, want a new one", l)
	}
	cancel()
	<-m.Done()
}

func probersOf(m *Monitor) map[string]bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]bool{}
	for b := range m.probers {
		out[b.ID()] = true
	}
	return out
}

// TestMonitorFollowsConcurrentUpdates: updates and reloads from several
// goroutines at once leave the monitor probing exactly the set's final
// members: no older member list applied after a newer one.
func TestMonitorFollowsConcurrentUpdates(t *testing.T) {
	noLeaks(t)
	var addrs []string
	for range 6 {
		addrs = append(addrs, startTCP(t, blackhole).addr())
	}
	set := newSet(t, addrs[0])
	m, err := NewMonitor(set, Config{Type: TypeTCP, Interval: time.Hour}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	runMonitor(t, m)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 200 {
				n := 1 + (w*7+i*3)%len(addrs)
				set.Update(specs(addrs[:n]...))
				if i%50 == 0 {
					m.Reconfigure(Config{Type: TypeTCP, Interval: time.Duration(1+i%2) * time.Hour})
				}
			}
		})
	}
	wg.Wait()
	want := map[string]bool{}
	for _, b := range set.Backends() {
		want[b.ID()] = true
	}
	if got := probersOf(m); !maps.Equal(got, want) {
		t.Fatalf("probers %v, set's members %v", got, want)
	}
}
