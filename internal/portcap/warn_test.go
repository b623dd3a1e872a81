package portcap

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestWarner(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// 28232 ports held 60 s: 470/s on a network, 28232/s on loopback.
	s, err := Read(procFS(nil))
	if err != nil {
		t.Fatal(err)
	}
	w := &Warner{Settings: s, Log: log}
	start := time.Unix(1_700_000_000, 0)
	var total, lo uint64
	// step advances the fake clock by 10 s at the given rates (per second)
	// for the backend on a network and the one on loopback, and returns
	// what was logged.
	step := func(i int, rate, loRate uint64) string {
		total += rate * 10
		lo += loRate * 10
		buf.Reset()
		w.Observe(start.Add(time.Duration(i)*10*time.Second), []Sample{
			{Service: "db", Backend: "db-1", Address: "10.0.0.2:5432", Total: total},
			{Service: "db", Backend: "local", Address: "127.0.0.1:5432", Total: lo},
		})
		return buf.String()
	}
	// Play the scenario step by step, checking each line.
	got := []string{
		step(0, 0, 0),
		step(1, 300, 300),
		step(2, 400, 1000),
		step(3, 400, 1000),
		step(4, 450, 1000),
		step(5, 300, 1000),  // falls back: reset
		step(6, 400, 1000),  // over again 40 s after the warning: too soon
		step(7, 400, 1000),  // 50 s
		step(8, 400, 23000), // 60 s: warned again; loopback (81% of 28232) too
		step(9, 400, 23000), // nothing new
	}
	want := []struct{ has, hasNot []string }{
		{hasNot: []string{"level"}},
		{hasNot: []string{"level"}},
		{has: []string{"level=WARN", "service=db", "backend=db-1", "address=10.0.0.2:5432", "rate_per_second=400", "capacity_per_second=470"}, hasNot: []string{"backend=local"}},
		{hasNot: []string{"level"}},
		{hasNot: []string{"level"}},
		{has: []string{"level=INFO", "back under", "backend=db-1", "rate_per_second=300"}},
		{hasNot: []string{"level"}},
		{hasNot: []string{"level"}},
		{has: []string{"level=WARN", "backend=db-1", "backend=local", "capacity_per_second=28232"}},
		{hasNot: []string{"level"}},
	}
	for i := range got {
		for _, h := range want[i].has {
			if !strings.Contains(got[i], h) {
				t.Errorf("step %d: log %q lacks %q", i, got[i], h)
			}
		}
		for _, h := range want[i].hasNot {
			if strings.Contains(got[i], h) {
				t.Errorf("step %d: log %q has %q", i, got[i], h)
			}
		}
	}
	if n := strings.Count(got[8], "level=WARN"); n != 2 {
		t.Errorf("step 8: %d warnings, want 2: %s", n, got[8])
	}
}

func TestWarnerForgetsAndResets(t *testing.T) {
	s, err := Read(procFS(nil))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := &Warner{Settings: s, Log: slog.New(slog.NewTextHandler(&buf, nil)), Window: time.Second, Every: time.Minute}
	t0 := time.Unix(0, 0)
	w.Observe(t0, []Sample{{Service: "a", Backend: "b", Address: "10.0.0.1:1", Total: 0}})
	w.Observe(t0.Add(time.Second), []Sample{{Service: "a", Backend: "b", Address: "10.0.0.1:1", Total: 1000}})
	if !strings.Contains(buf.String(), "WARN") {
		t.Fatalf("no warning at 1000/s: %q", buf.String())
	}
	// The backend goes away and comes back with a fresh counter (a new
	// Backend object): no rate from the old total.
	w.Observe(t0.Add(2*time.Second), nil)
	if len(w.seen) != 0 {
		t.Fatalf("%d backends remembered after they went", len(w.seen))
	}
	buf.Reset()
	w.Observe(t0.Add(3*time.Second), []Sample{{Service: "a", Backend: "b", Address: "10.0.0.1:1", Total: 5}})
	w.Observe(t0.Add(4*time.Second), []Sample{{Service: "a", Backend: "b", Address: "10.0.0.1:1", Total: 3}}) // went down: skipped
	w.Observe(t0.Add(5*time.Second), []Sample{{Service: "a", Backend: "b", Address: "10.0.0.1:1", Total: 13}})
	if buf.Len() != 0 {
		t.Fatalf("logged %q at a low rate", buf.String())
	}
}

// Idle backends leave no state behind, and one that starts opening
// connections between two samples is rated over the window: its real rate
// is at least that, so the warning is never false.
func TestWarnerKeepsNothingForIdleBackends(t *testing.T) {
	s, err := Read(procFS(nil))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := &Warner{Settings: s, Log: slog.New(slog.NewTextHandler(&buf, nil))}
	t0 := time.Unix(0, 0)
	idle := make([]Sample, 1000)
	for i := range idle {
		idle[i] = Sample{Service: "a", Backend: fmt.Sprintf("b%d", i), Address: fmt.Sprintf("10.0.%d.%d:80", i/250, i%250)}
	}
	for i := range 3 {
		w.Observe(t0.Add(time.Duration(i)*10*time.Second), idle)
	}
	if len(w.seen) != 0 {
		t.Fatalf("%d idle backends tracked, want none", len(w.seen))
	}
	busy := append(idle, Sample{Service: "a", Backend: "new", Address: "10.0.9.9:80", Total: 4000})
	w.Observe(t0.Add(30*time.Second), busy)
	if !strings.Contains(buf.String(), "backend=new") || !strings.Contains(buf.String(), "rate_per_second=400") {
		t.Fatalf("a new backend at 400/s over the window not warned about: %q", buf.String())
	}
	if len(w.seen) != 1 {
		t.Fatalf("%d backends tracked, want the busy one", len(w.seen))
	}
}
