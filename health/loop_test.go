//go:build linux

package health

import (
	"context"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tierlb/tierlb/backends"
	"github.com/tierlb/tierlb/internal/testkit"
)

func TestScheduleOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	t0 := time.Unix(1000, 0)
	var s schedule
	var in []*prober
	for i := range 500 {
		p := &prober{index: -1, due: t0.Add(time.Duration(r.IntN(1000)) * time.Millisecond)}
		s.push(p)
		in = append(in, p)
		switch {
		case i%7 == 0: // move one
			q := in[r.IntN(len(in))]
			if q.index >= 0 {
				s.reschedule(q, t0.Add(time.Duration(r.IntN(1000))*time.Millisecond))
			}
		case i%5 == 0: // remove one, twice: the second is a no-op
			q := in[r.IntN(len(in))]
			s.remove(q)
			s.remove(q)
		}
	}
	var got []time.Time
	for s.len() > 0 {
		p := s.pop(t0.Add(time.Hour))
		if p.index != -1 {
			t.Fatalf("popped prober keeps index %d", p.index)
		}
		got = append(got, p.due)
	}
	if !slices.IsSortedFunc(got, func(a, b time.Time) int { return a.Compare(b) }) {
		t.Fatal("probers did not come out in due order")
	}
	if s.pop(t0) != nil {
		t.Fatal("pop of an empty schedule")
	}
}

// virtualLoop drives a check loop's scheduling in virtual time: fire at the
// next due time, with tcp probes of a listener that answers in the kernel
// (the handshake ends within connect on loopback), so every probe ends
// within fire and the clock only moves when the test moves it.
type virtualLoop struct {
	l      *checkLoop
	now    time.Time
	starts map[*prober][]time.Time
}

func newVirtualLoop(t *testing.T, n int, cfg Config, seed uint64) (*virtualLoop, []*backends.Backend) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0") // never accepts: tcp probes reset before it could
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var addrs []string
	for range n {
		addrs = append(addrs, ln.Addr().String())
	}
	set := newSet(t, addrs...)
	l, err := newCheckLoop()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.close)
	metrics, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(seed, seed))
	v := &virtualLoop{l: l, now: time.Unix(1_000_000, 0), starts: map[*prober][]time.Time{}}
	l.ctx = context.Background()
	cfg = cfg.WithDefaults()
	for _, b := range set.Backends() {
		p := newProber(b, &cfg, TCPChecker{}, slog.New(slog.DiscardHandler), metrics.series("app", b.ID()), r.Float64)
		if p.wire == nil {
			t.Fatal("a tcp prober of an IP address without a wire probe")
		}
		l.post(loopCmd{op: cmdAdd, p: p})
	}
	l.takeInbox(v.now)
	return v, set.Backends()
}

// runUntil fires every probe due up to end, recording when each started.
func (v *virtualLoop) runUntil(t *testing.T, end time.Time) {
	t.Helper()
	for {
		next := v.l.queue.next()
		if next == nil || next.due.After(end) {
			v.now = end
			return
		}
		v.now = next.due
		var due []*prober
		for p := v.l.queue.pop(v.now); p != nil; p = v.l.queue.pop(v.now) {
			due = append(due, p)
			v.starts[p] = append(v.starts[p], v.now)
		}
		for _, p := range due {
			v.l.queue.push(p)
		}
		v.l.fire(v.now)
		for _, p := range due {
			if p.running {
				t.Fatalf("probe of %s still in flight: the listener did not answer in the kernel", p.b.Address())
			}
		}
	}
}

// TestLoopSpreadsProbes: backends added together are probed at once, then
// spread over the interval: no 100 ms of the steady state sees more than
// the mean and five standard deviations of independent random starts
// (√mean); probes in lock step would put all 500 in one.
func TestLoopSpreadsProbes(t *testing.T) {
	const n, interval = 500, 2 * time.Second
	v, _ := newVirtualLoop(t, n, Config{Interval: interval}, 1)
	t0 := v.now
	v.runUntil(t, t0.Add(20*interval))
	buckets := map[int64]int{}
	for p, starts := range v.starts {
		if len(starts) < 15 {
			t.Fatalf("backend %s probed %d times in 20 intervals", p.b.ID(), len(starts))
		}
		if !starts[0].Equal(t0) {
			t.Fatalf("first probe of a new backend at +%v, want at once", starts[0].Sub(t0))
		}
		for _, s := range starts {
			if d := s.Sub(t0); d >= 2*interval { // the steady state
				buckets[int64(d/(100*time.Millisecond))]++
			}
		}
	}
	total, peak := 0, 0
	for _, c := range buckets {
		total += c
		peak = max(peak, c)
	}
	mean := float64(total) / float64(18*interval/(100*time.Millisecond))
	if float64(peak) > mean+5*math.Sqrt(mean) {
		t.Fatalf("busiest 100 ms has %d probes, mean %.1f: not spread", peak, mean)
	}
}

// TestLoopNoDrift: in the steady state every wait between two probes of a
// backend is the interval ±15%, give or take half a grid step, and over
// many probes the mean period is the interval: neither the loop nor the
// grid adds a delay that accumulates.
func TestLoopNoDrift(t *testing.T) {
	const n, interval = 50, time.Second
	const tick = interval / 20 // onGrid's
	v, _ := newVirtualLoop(t, n, Config{Interval: interval}, 2)
	v.runUntil(t, v.now.Add(200*interval))
	for p, starts := range v.starts {
		steady := starts[2:] // after the first probe and the spread wait
		for i := 1; i < len(steady); i++ {
			if d := steady[i].Sub(steady[i-1]); d < interval*85/100-tick/2 || d > interval*115/100+tick/2 {
				t.Fatalf("backend %s: wait %v between probes, want %v ±15%%", p.b.ID(), d, interval)
			}
		}
		mean := steady[len(steady)-1].Sub(steady[0]) / time.Duration(len(steady)-1)
		if mean < interval*97/100 || mean > interval*103/100 {
			t.Fatalf("backend %s: mean period %v over %d probes, want %v", p.b.ID(), mean, len(steady), interval)
		}
	}
}

// TestLoopProbeNowAndRemove: an immediate probe is made at once (or right
// after the one in flight), and a removed prober is never probed again.
func TestLoopProbeNowAndRemove(t *testing.T) {
	v, _ := newVirtualLoop(t, 2, Config{Interval: time.Hour}, 3)
	v.runUntil(t, v.now.Add(time.Minute))
	var a, b *prober
	for p := range v.starts {
		if a == nil {
			a = p
		} else {
			b = p
		}
	}
	before := len(v.starts[a])
	v.l.post(loopCmd{op: cmdProbeNow, p: a})
	v.l.post(loopCmd{op: cmdRemove, p: b})
	v.l.takeInbox(v.now)
	v.runUntil(t, v.now) // what is due now, no later
	if got := len(v.starts[a]); got != before+1 {
		t.Fatalf("%d probes after ProbeNow, want %d", got, before+1)
	}
	nb := len(v.starts[b])
	v.runUntil(t, v.now.Add(3*time.Hour))
	if got := len(v.starts[b]); got != nb {
		t.Fatalf("removed prober probed %d more times", got-nb)
	}
	if b.index != -1 || !b.removed {
		t.Fatal("removed prober still queued")
	}
}

// TestLoopLeavesNoDescriptors: a monitor whose probes hang (a silent http
// backend), fail or pass, stopped mid-probe, closes every socket it opened.
func TestLoopLeavesNoDescriptors(t *testing.T) {
	noLeaks(t)
	silent := startTCP(t, blackhole)
	ok := startTCP(t, reply(httpReply(200)))
	var addrs []string
	for i := range 30 {
		switch i % 3 {
		case 0:
			addrs = append(addrs, silent.addr())
		case 1:
			addrs = append(addrs, ok.addr())
		default:
			addrs = append(addrs, testkit.ClosedPort(t))
		}
	}
	before := testkit.OpenFDs(t)
	set := newSet(t, addrs...)
	m, err := NewMonitor(set, Config{Type: TypeHTTP, Interval: 5 * time.Millisecond, Timeout: time.Hour}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	stop := runMonitor(t, m)
	testkit.Eventually(t, 5*time.Second, "ten silent backends' probes in flight", func() bool {
		return silent.accepted.Load() >= 10 && ok.accepted.Load() >= 10
	})
	stop()
	// The test servers' own sockets close as the probes' resets reach them.
	testkit.Eventually(t, 3*time.Second, "descriptors back to where they were", func() bool {
		return testkit.OpenFDs(t) <= before
	})
}

// TestLoopAllocations: a steady tcp probe that passes allocates only the
// last-check record the backend keeps for status pages.
func TestLoopAllocations(t *testing.T) {
	v, _ := newVirtualLoop(t, 1, Config{Interval: time.Second}, 4)
	v.runUntil(t, v.now.Add(10*time.Second))
	allocs := testing.AllocsPerRun(100, func() {
		next := v.l.queue.next()
		v.now = next.due
		v.l.fire(v.now)
	})
	if allocs > 1 {
		t.Fatalf("%.1f allocations per probe, want at most 1 (Backend.RecordCheck's)", allocs)
	}
}

// FuzzStatusLine: an http probe's status line parser never panics, and
// passes a reply only when it starts "HTTP/1.x NNN" with NNN accepted.
func FuzzStatusLine(f *testing.F) {
	for _, s := range []string{"HTTP/1.1 200 OK\r\n", "HTTP/1.0 204\r\n", "HTTP/1.1 503 Busy", "SSH-2.0-OpenSSH\r\n", "HTTP/1.1 2x0 OK", "HTTP/1.1 099 x", "HTTP/2 200\r\n", ""} {
		f.Add([]byte(s))
	}
	status := StatusRanges{{200, 299}}
	f.Fuzz(func(t *testing.T, reply []byte) {
		w, ok := newWireProbe("127.0.0.1:80", "127.0.0.1:80", NewHTTPChecker("/healthz", "", status))
		if !ok {
			t.Fatal("no wire probe for an IP address")
		}
		w.n = copy(w.head[:], reply)
		err := w.status()
		line := w.head[:w.n]
		valid := len(line) >= 12 && string(line[:7]) == "HTTP/1." && line[8] == ' ' &&
			line[9] >= '2' && line[9] <= '2' && line[10] >= '0' && line[10] <= '9' && line[11] >= '0' && line[11] <= '9' &&
			(len(line) == 12 || line[12] == ' ' || line[12] == '\r' || line[12] == '\n')
		if (err == nil) != valid {
			t.Fatalf("status(%q) = %v, want pass=%v", line, err, valid)
		}
	})
}
