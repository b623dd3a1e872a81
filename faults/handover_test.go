package faults

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tierlb/tierlb/internal/testkit"
)

// TestFaultUpgradeByHandOver upgrades tierlb in a row (3 times; 10 in the
// full suite), each new process taking the listening sockets from the
// running one, under new connections at a bounded rate and 100 long-lived
// connections that move bytes for 5 s each: no new connection may fail,
// no long-lived one may be cut (the drain timeout, 30 s, outlasts them),
// every old process exits 0, and the last process's descriptors and memory
// are back where the first one's were.
func TestFaultUpgradeByHandOver(t *testing.T) {
	upgrades := 3
	if full() {
		upgrades = 10
	}
	a, b := startEcho(t, "127.0.0.1:0"), startEcho(t, "127.0.0.1:0")
	listen := testkit.ClosedPort(t)
	dir, err := os.MkdirTemp("", "tlbf") // short: a socket path holds 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	file := filepath.Join(dir, "tierlb.yaml")
	cfg := serviceConfig(listen, "roundrobin", time.Hour, a.addr(), b.addr()) +
		fmt.Sprintf("handover: {socket: %s}\nshutdown: {drain_timeout: 30s}\n", filepath.Join(dir, "h.sock"))
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	first := startFile(t, file)
	addr := first.listenAddr(t, "app")
	testkit.Eventually(t, 10*time.Second, "the service answering", func() bool { return exchange(addr, []byte("x")) == nil })
	fds0, rss0 := first.fds(t), first.metric(t, "process_resident_memory_bytes")

	const rate, longLived = 400, 100
	fresh := startRateLoad(t, addr, 8, rate, 5*time.Minute, 200_000)
	long := startLongLived(t, addr, longLived, 5*time.Second, 5*time.Minute)
	testkit.Eventually(t, 10*time.Second, "the long-lived connections open", func() bool { return long.open.Load() == longLived })

	procs := []*proc{first}
	var toAccept []time.Duration
	for range upgrades {
		time.Sleep(time.Second) // new and long-lived connections on the running one
		old := procs[len(procs)-1]
		began := time.Now()
		next := startFile(t, file)
		since := next.WaitLog(t, `msg="hand-over: accepting on the inherited sockets".* since_start=(\S+)`)
		d, err := time.ParseDuration(since)
		if err != nil {
			t.Fatalf("since_start %q: %v", since, err)
		}
		toAccept = append(toAccept, d)
		old.WaitLog(t, `hand-over: the successor accepts; stopped accepting`)
		t.Logf("upgrade %d: hand-over done %s after the new process started", len(procs), time.Since(began).Round(time.Millisecond))
		procs = append(procs, next)
	}
	time.Sleep(time.Second)
	fresh.stop()
	long.stop()
	last := procs[len(procs)-1]
	for i, p := range procs[:len(procs)-1] {
		if code := p.Wait(t, 40*time.Second); code != 0 {
			t.Errorf("process %d exited %d after the hand-over, want 0", i, code)
		}
	}
	ok, failed := fresh.ok.Load(), fresh.failed.Load()
	if failed > 0 {
		t.Errorf("%d of %d new connections failed (last: %v)", failed, ok+failed, fresh.err())
	}
	if ok == 0 {
		t.Fatal("no new connection succeeded")
	}
	if n := long.cut.Load(); n > 0 {
		t.Errorf("%d of %d long-lived connections cut (last: %v)", n, long.done.Load()+n, long.err())
	}
	var fds int
	var rss float64
	settled := testkit.Within(20*time.Second, func() bool {
		fds, rss = last.fds(t), last.metric(t, "process_resident_memory_bytes")
		return fds <= fds0+2 && a.open.Load()+b.open.Load() == 0
	})
	if !settled {
		t.Errorf("after the upgrades: the last process holds %d descriptors (the first %d at start); backends hold %d connections",
			fds, fds0, a.open.Load()+b.open.Load())
	}
	slices.Sort(toAccept)
	report(t, fmt.Sprintf("tierlb upgrade by hand-over, %d in a row", upgrades), verdict(t),
		"%d new connections (%d/s), %d failed; %d long-lived connections moving bytes, %d cut; start to accepting %s–%s (median %s); last process fds %d, RSS %.1f MiB (first at start: %d, %.1f MiB)",
		ok+failed, rate, failed, long.done.Load()+long.cut.Load(), long.cut.Load(),
		toAccept[0].Round(time.Millisecond), toAccept[len(toAccept)-1].Round(time.Millisecond), toAccept[len(toAccept)/2].Round(time.Millisecond),
		fds, rss/(1<<20), fds0, rss0/(1<<20))
}

// startFile runs `tierlb run --config file` (Docker off) and waits for its
// admin listener.
func startFile(t *testing.T, file string) *proc {
	t.Helper()
	cmd := exec.Command(binary, "run", "--config", file)
	cmd.Env = append(os.Environ(), "TIERLB_DOCKER_ENABLED=false")
	p := &proc{Proc: testkit.StartProc(t, cmd)}
	p.admin = p.WaitLog(t, `msg="admin listening" addr=(\S+)`)
	return p
}

// startRateLoad is load at a bounded rate: workers share rate connections
// per second, for at most maxDur and maxConns connections.
func startRateLoad(t *testing.T, addr string, workers, rate int, maxDur time.Duration, maxConns int64) *load {
	ctx, cancel := context.WithTimeout(context.Background(), maxDur)
	l := &load{cancel: cancel}
	var issued atomic.Int64
	every := time.Duration(workers) * time.Second / time.Duration(rate)
	for w := range workers {
		l.wg.Go(func() {
			msg := fmt.Appendf(nil, "worker %d says hello\n", w)
			tick := time.NewTicker(every)
			defer tick.Stop()
			for issued.Add(1) <= maxConns {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				if err := exchange(addr, msg); err != nil {
					l.failed.Add(1)
					l.mu.Lock()
					l.lastErr = err
					l.mu.Unlock()
					continue
				}
				l.ok.Add(1)
			}
		})
	}
	t.Cleanup(l.stop)
	return l
}

// longLived keeps n connections open, each moving 1 KiB every 20 ms (echoed
// back whole) for its lifetime and then closing; a closed one is replaced.
// A connection that fails before its client closes it is cut.
type longLived struct {
	open, done, cut atomic.Int64
	cancel          context.CancelFunc
	wg              sync.WaitGroup
	mu              sync.Mutex
	lastErr         error
}

func startLongLived(t *testing.T, addr string, n int, lifetime, maxDur time.Duration) *longLived {
	ctx, cancel := context.WithTimeout(context.Background(), maxDur)
	l := &longLived{cancel: cancel}
	maxConns := int64(n) * int64(maxDur/lifetime+1)
	var issued atomic.Int64
	for range n {
		l.wg.Go(func() {
			for ctx.Err() == nil && issued.Add(1) <= maxConns {
				// Lifetimes spread so that connections do not all turn over together.
				life := lifetime/2 + rand.N(lifetime)
				if err := l.one(ctx, addr, life); err != nil {
					l.cut.Add(1)
					l.mu.Lock()
					l.lastErr = err
					l.mu.Unlock()
					continue
				}
				l.done.Add(1)
			}
		})
	}
	t.Cleanup(l.stop)
	return l
}

func (l *longLived) one(ctx context.Context, addr string, life time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	l.open.Add(1)
	defer l.open.Add(-1)
	msg := bytes.Repeat([]byte("x"), 1024)
	got := make([]byte, len(msg))
	end := time.Now().Add(life)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(msg); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, got); err != nil {
			return err
		}
	}
	// A graceful close: our FIN, then the echo backend's.
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return err
	}
	if n, err := c.Read(got); err != io.EOF {
		return fmt.Errorf("after our FIN: %d bytes, %v (want EOF)", n, err)
	}
	return nil
}

func (l *longLived) stop() {
	l.cancel()
	l.wg.Wait()
}

func (l *longLived) err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastErr
}
