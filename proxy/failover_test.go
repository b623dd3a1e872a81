package proxy

import (
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/tierlb/tierlb/backends"
	"github.com/tierlb/tierlb/internal/testkit"
)

// silentAddr returns a loopback address that never answers a SYN: a socket
// listening with backlog 0 whose one-slot accept queue is already full, so
// the kernel drops further SYNs and the dialer waits out its timeout.
func silentAddr(t testing.TB) string {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := (&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*unix.SockaddrInet4).Port}).String()
	filler, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatalf("fill accept queue: %v", err)
	}
	t.Cleanup(func() { filler.Close() })
	// Prove the queue is full before relying on it.
	if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
		c.Close()
		t.Fatal("a second connection to the backlog-0 listener succeeded")
	}
	return addr
}

// dialLog records the observer's calls.
type dialLog struct {
	mu     sync.Mutex
	failed map[string]int
	ok     map[string]int
	errs   []error
}

func (d *dialLog) DialFailed(b *backends.Backend, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failed[b.ID()]++
	d.errs = append(d.errs, err)
}

func (d *dialLog) DialSucceeded(b *backends.Backend) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ok[b.ID()]++
}

// TestFailover: a dead first choice costs the client nothing but time; the
// next backend serves, the failure is counted and observed.
func TestFailover(t *testing.T) {
	tests := []struct {
		name    string
		dead    func(testing.TB) string
		reason  backends.DialError
		minWait time.Duration
	}{
		{"refusing", testkit.ClosedPort, backends.DialRefused, 0},
		{"silent", silentAddr, backends.DialTimeout, 300 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			good := startBackend(t, nameBackend("good"))
			set := backends.NewSet("fo", backends.RoundRobin, backends.SetOptions{})
			t.Cleanup(set.Close)
			// IDs sort "a" first, so the dead backend is the first choice.
			set.Update([]backends.Spec{
				{ID: "a-dead", Address: tt.dead(t), Weight: 1},
				{ID: "b-good", Address: good.addr(), Weight: 1},
			})
			obs := &dialLog{failed: map[string]int{}, ok: map[string]int{}}
			cfg := Config{Name: "fo", Listen: "127.0.0.1:0", Retries: 1, ZeroCopy: true,
				Timeouts: Timeouts{Connect: 300 * time.Millisecond}}
			s, err := NewService(cfg, set, Options{Observer: obs})
			if err != nil {
				t.Fatal(err)
			}
			serveService(t, s)
			testkit.Eventually(t, time.Second, "listener", func() bool { return s.Addr() != nil })

			t0 := time.Now()
			if got := ask(t, s); got != "good" {
				t.Fatalf("first connection answered by %q", got)
			}
			took := time.Since(t0)
			if took < tt.minWait || took > tt.minWait+time.Second {
				t.Errorf("first connection took %v, want about %v", took, tt.minWait)
			}
			if got := ask(t, s); got != "good" {
				t.Fatalf("second connection answered by %q", got)
			}
			dead := set.Backend("a-dead")
			if n := dead.ConnectErrors()[tt.reason]; n != 1 {
				t.Errorf("connect errors %v: %d, want 1 (all %v)", tt.reason, n, dead.ConnectErrors())
			}
			obs.mu.Lock()
			defer obs.mu.Unlock()
			if obs.failed["a-dead"] != 1 || obs.ok["b-good"] != 2 {
				t.Errorf("observer: failed %v ok %v", obs.failed, obs.ok)
			}
		})
	}
}

// TestAllBackendsFail: when every try fails the client is closed and the
// refusal counted as no_backend.
func TestAllBackendsFail(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	set := staticSet(t, testkit.ClosedPort(t), testkit.ClosedPort(t))
	s, err := NewService(Config{Name: "nb", Listen: "127.0.0.1:0", Retries: 5}, set, Options{Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	serveService(t, s)
	testkit.Eventually(t, time.Second, "listener", func() bool { return s.Addr() != nil })
	if err := refusal(s); !errors.Is(err, unix.ECONNRESET) {
		t.Fatalf("client read ended with %v, want a reset", err)
	}
	testkit.Eventually(t, time.Second, "rejection counted", func() bool {
		return m.rejectedCount("nb", RejectNoBackend) == 1
	})
	var errs uint64
	for _, b := range set.Backends() {
		errs += b.ConnectErrors()[backends.DialRefused]
	}
	if errs != 2 {
		t.Errorf("refused dials counted: %d, want 2 (each backend once)", errs)
	}
}
