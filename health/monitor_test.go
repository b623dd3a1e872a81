package health

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tierlb/tierlb/backends"
	"github.com/tierlb/tierlb/internal/testkit"
)

// runMonitor runs m until the returned stop is called or the test ends;
// stop fails the test if Run does not return promptly or returns an error.
func runMonitor(t *testing.T, m *Monitor) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() { res <- m.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-res:
				if err != nil {
					t.Errorf("Run() = %v, want nil", err)
				}
			case <-time.After(3 * time.Second):
				t.Errorf("Run did not return within 3s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// newSet returns a set holding one backend per address, named web-1...
func newSet(t *testing.T, addrs ...string) *backends.Set {
	t.Helper()
	set := backends.NewSet("app", backends.RoundRobin, backends.SetOptions{})
	t.Cleanup(set.Close)
	set.Update(specs(addrs...))
	return set
}

func specs(addrs ...string) []backends.Spec {
	var out []backends.Spec
	for i, a := range addrs {
		out = append(out, backends.Spec{ID: fmt.Sprintf("web-%d", i+1), Address: a, Weight: 1})
	}
	return out
}

// scriptedHTTP answers request i (from 1) with 200 when ok(i), else 503,
// and first calls seen(i), which runs before the response is written.
func scriptedHTTP(t *testing.T, ok func(i int) bool, seen func(i int)) *tcpServer {
	var mu sync.Mutex
	n := 0
	return startTCP(t, func(_ *tcpServer, c net.Conn) {
		if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
			return
		}
		mu.Lock()
		n++
		i := n
		seen(i)
		mu.Unlock()
		status := 503
		if ok(i) {
			status = 200
		}
		c.Write([]byte(httpReply(status)))
	})
}

// TestRiseFall drives one backend through a script of passing and failing
// probes and checks, at the arrival of each probe, the state the previous
// probes left: down after exactly fall failures, up after exactly rise
// passes, the first probe alone deciding a new backend's state.
func TestRiseFall(t *testing.T) {
	const U, D = backends.StateUp, backends.StateDown
	tests := []struct {
		name       string
		rise, fall int
		script     string // one letter per probe: o passes, x fails
		want       []backends.State
		logs       []string // expected state change reasons, when checked
	}{
		{
			name: "exact counts", rise: 2, fall: 3,
			script: "oxxoxxxoxooo",
			want:   []backends.State{D, U, U, U, U, U, U, D, D, D, D, U},
			logs: []string{
				"backend up: passed its first check",
				"backend down: failed 3 consecutive checks, last: GET http://ADDR/healthz: status 503, want 200-399",
				"backend up: passed 2 consecutive checks",
			},
		},
		{
			// A new backend that fails at first is starting: it comes up at
			// its first pass, and only then does rise guard against flaps.
			name: "first probe fails", rise: 3, fall: 3,
			script: "xxoxooo",
			want:   []backends.State{D, D, D, U, U, U, U},
			logs: []string{
				"backend down: GET http://ADDR/healthz: status 503, want 200-399",
				"backend up: passed its first check",
			},
		},
		{
			name: "down after joining needs rise", rise: 3, fall: 1,
			script: "oxoooo",
			want:   []backends.State{D, U, D, D, D, U},
			logs: []string{
				"backend up: passed its first check",
				"backend down: failed 1 consecutive checks, last: GET http://ADDR/healthz: status 503, want 200-399",
				"backend up: passed 3 consecutive checks",
			},
		},
		{
			name: "flapping below fall stays up", rise: 2, fall: 2,
			script: "oxoxoxoxoxox",
			want:   []backends.State{D, U, U, U, U, U, U, U, U, U, U, U},
		},
		{
			name: "flapping with rise and fall 1 follows every probe", rise: 1, fall: 1,
			script: "oxoxoxox",
			want:   []backends.State{D, U, D, U, D, U, D, U},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			noLeaks(t)
			var b *backends.Backend
			got := make([]backends.State, len(tt.script))
			done, release := make(chan struct{}), make(chan struct{})
			defer close(release)
			srv := scriptedHTTP(t, func(i int) bool {
				return i > len(tt.script) || tt.script[i-1] == 'o'
			}, func(i int) {
				if i <= len(got) {
					got[i-1], _ = b.State()
				}
				if i == len(got) {
					// Hold the last probe until the logs are read, so that
					// its result cannot add a state change.
					close(done)
					<-release
				}
			})
			set := newSet(t, srv.addr())
			b = set.Backend("web-1")
			logs := &logRecorder{}
			cfg := Config{Type: TypeHTTP, Interval: 10 * time.Millisecond, Timeout: 2 * time.Second, Rise: tt.rise, Fall: tt.fall}
			m, err := NewMonitor(set, cfg, Options{Logger: slog.New(logs)})
			if err != nil {
				t.Fatal(err)
			}
			stop := runMonitor(t, m)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("the script did not run to its end")
			}
			// Logs are read before the next probe's result can be recorded.
			changes := logs.messages("backend up", "backend down")
			stop()
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("states before each probe = %v, want %v", got, tt.want)
				}
			}
			wantChanges := 1
			for i := 2; i < len(tt.want); i++ {
				if tt.want[i] != tt.want[i-1] {
					wantChanges++
				}
			}
			if len(changes) != wantChanges {
				t.Fatalf("state change logs = %q, want %d", changes, wantChanges)
			}
			for i, want := range tt.logs {
				if want = strings.ReplaceAll(want, "ADDR", srv.addr()); changes[i] != want {
					t.Errorf("log %d = %q, want %q", i, changes[i], want)
				}
			}
		})
	}
}

// TestMonitorMisbehavingBackends: each failure mode takes a new backend
// down at its first probe with a reason that names it.
func TestMonitorMisbehavingBackends(t *testing.T) {
	tests := []struct {
		name   string
		server func(*tcpServer, net.Conn) // nil: refusing
		reason string
	}{
		{"refusing", nil, "connection refused"},
		{"never answering", blackhole, "timed out after 50ms"},
		{"answering after the timeout", answerAfter(time.Second, httpReply(200)), "timed out after 50ms"},
		{"accept then reset", resetter, `Get "http://`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			noLeaks(t)
			addr := testkit.ClosedPort(t)
			if tt.server != nil {
				addr = startTCP(t, tt.server).addr()
			}
			set := newSet(t, addr)
			b := set.Backend("web-1")
			m, err := NewMonitor(set, Config{Type: TypeHTTP, Interval: 20 * time.Millisecond, Timeout: 50 * time.Millisecond}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			runMonitor(t, m)
			testkit.Eventually(t, 3*time.Second, "a failed probe", func() bool {
				_, last := b.Health()
				return last != nil
			})
			st, reason := b.State()
			if st != backends.StateDown || !strings.Contains(reason, tt.reason) {
				t.Fatalf("state = %v %q, want down with %q", st, reason, tt.reason)
			}
		})
	}
}

// TestMonitorMembership: probers follow the set; metric series are exported
// at zero when a backend's prober starts and deleted when it goes away.
func TestMonitorMembership(t *testing.T) {
	noLeaks(t)
	a, b2 := startTCP(t, blackhole), startTCP(t, blackhole)
	set := newSet(t, a.addr())
	reg := prometheus.NewRegistry()
	metrics, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMonitor(set, Config{Interval: 10 * time.Millisecond}, Options{Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	stop := runMonitor(t, m)
	// A tcp probe never reaches the backend's accept (it is reset before
	// the handshake ends): the metrics count the probes.
	testkit.Eventually(t, 2*time.Second, "web-1 probed", func() bool { return probes(metrics, "web-1") >= 2 })
	web1 := set.Backend("web-1")

	set.Update(specs(a.addr(), b2.addr()))
	testkit.Eventually(t, 2*time.Second, "web-2 probed", func() bool { return probes(metrics, "web-2") >= 1 })
	// The prober starts before the reconcile exports its series, so its
	// first probe may land a moment before them.
	testkit.Eventually(t, 2*time.Second, "two backends' series", func() bool {
		return testutil.CollectAndCount(metrics.checks) == 4
	})

	set.Update([]backends.Spec{{ID: "web-2", Address: b2.addr(), Weight: 1}})
	testkit.Eventually(t, 2*time.Second, "web-1's series deleted", func() bool {
		return testutil.CollectAndCount(metrics.checks) == 2
	})
	m.mu.Lock()
	probers := len(m.probers)
	m.mu.Unlock()
	if probers != 1 {
		t.Fatalf("%d probers after removal, want 1", probers)
	}
	// Once web-1's series are gone its prober is off the loop: let web-2
	// be probed a few times and check that web-1's last check is unchanged.
	_, before := web1.Health()
	base := probes(metrics, "web-2")
	testkit.Eventually(t, 2*time.Second, "web-2 probed again", func() bool { return probes(metrics, "web-2") >= base+3 })
	if _, after := web1.Health(); after != before {
		t.Fatalf("removed backend probed again: last check %+v, was %+v", after, before)
	}
	if _, got := metrics.counts("app", "web-2"); got != 0 {
		t.Fatalf("fail count of a passing backend = %v", got)
	}
	stop()
	if n := testutil.CollectAndCount(metrics.checks); n != 0 {
		t.Fatalf("%d series left after Run returned, want 0", n)
	}
}

// TestMonitorStopsCleanly: cancel ends Run while probes hang on silent
// backends, with no goroutine left; a second Run at once is refused.
func TestMonitorStopsCleanly(t *testing.T) {
	noLeaks(t)
	var addrs []string
	for range 4 {
		addrs = append(addrs, startTCP(t, blackhole).addr())
	}
	srv := startTCP(t, blackhole)
	set := newSet(t, append(addrs, srv.addr())...)
	m, err := NewMonitor(set, Config{Type: TypeHTTP, Interval: 10 * time.Millisecond, Timeout: time.Hour}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	stop := runMonitor(t, m)
	testkit.Eventually(t, 2*time.Second, "probes in flight", func() bool { return srv.accepted.Load() >= 1 })
	if err := m.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("second Run = %v, want already running", err)
	}
	start := time.Now()
	stop()
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Run took %v to stop", took)
	}
	// A stopped monitor can run again.
	stop = runMonitor(t, m)
	stop()
}

// TestReconfigure: a bad config is refused, type none releases backends that
// an earlier check held down, and a new type starts probing again.
func TestReconfigure(t *testing.T) {
	noLeaks(t)
	srv := startTCP(t, blackhole)
	set := newSet(t, srv.addr())
	b := set.Backend("web-1")
	metrics, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMonitor(set, Config{Type: TypeHTTP, Interval: 10 * time.Millisecond, Timeout: 20 * time.Millisecond}, Options{Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	runMonitor(t, m)
	testkit.Eventually(t, 2*time.Second, "down on http timeout", func() bool { st, _ := b.State(); return st == backends.StateDown && srv.accepted.Load() > 0 })

	if err := m.Reconfigure(Config{Type: "ping"}); err == nil {
		t.Fatal("bad config accepted")
	}
	if m.Config().Type != TypeHTTP {
		t.Fatalf("config changed to %q by a rejected reload", m.Config().Type)
	}
	if err := m.Reconfigure(Config{Type: TypeNone}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 2*time.Second, "up with checks disabled", func() bool {
		_, reason := b.State()
		return b.Up() && reason == "health checks disabled"
	})
	if err := m.Reconfigure(Config{Type: TypeTCP, Interval: 10 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	n := probes(metrics, "web-1")
	testkit.Eventually(t, 2*time.Second, "tcp probes", func() bool {
		_, last := b.Health()
		return probes(metrics, "web-1") >= n+2 && last.OK && b.Up()
	})
}
