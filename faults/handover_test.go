package faults

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tierlb/tierlb/internal/testkit"
)

// TestFaultUpgradeByHandOver upgrades tierlb in a row (3 times; 10 in the
// full suite), each new process taking the listening sockets from the
// running one, under new connections at a bounded rate and 100 long-lived
// connections that move bytes for 2.5–7.5 s each: no new connection may
// fail, no long-lived one may be cut (the drain timeout, 30 s, outlasts
// them), every old process exits 0, and the last process's descriptors
// and memory are back where the first one's were. The same upgrades as a
// restart (SIGTERM, exit, start: what replacing a container does) are
// measured beside it.
func TestFaultUpgradeByHandOver(t *testing.T) {
	t.Run("hand-over", func(t *testing.T) { upgradeInARow(t, true) })
	t.Run("restart", func(t *testing.T) {
		needFull(t) // each restart waits for the long-lived connections to end
		upgradeInARow(t, false)
	})
}

func upgradeInARow(t *testing.T, handOver bool) {
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
	cfg := serviceConfig(listen, "roundrobin", time.Hour, a.addr(), b.addr()) + "shutdown: {drain_timeout: 30s}\n"
	if handOver {
		cfg += fmt.Sprintf("handover: {socket: %s}\n", filepath.Join(dir, "h.sock"))
	}
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	first := startFile(t, file)
	addr := first.listenAddr(t, "app")
	testkit.Eventually(t, 10*time.Second, "the service answering", func() bool { return exchange(addr, []byte("x")) == nil })
	fds0, rss0 := first.fds(t), first.metric(t, "process_resident_memory_bytes")

	const rate, longLived = testkit.SustainedRate, 100
	var seq atomic.Int64
	fresh := testkit.StartLoad(t, 8, testkit.Pace{Rate: rate, Count: 5 * 60 * rate, Within: 5 * time.Minute}, func(context.Context) error {
		return exchange(addr, fmt.Appendf(nil, "connection %d says hello\n", seq.Add(1)))
	})
	long := testkit.StartLongLived(t, addr, longLived, 5*time.Second, 20*time.Millisecond, 5*time.Minute)
	testkit.Eventually(t, 10*time.Second, "the long-lived connections open", func() bool { return long.Open() == longLived })

	procs := []*proc{first}
	var toAccept []time.Duration
	for range upgrades {
		time.Sleep(time.Second) // new and long-lived connections on the running one
		old := procs[len(procs)-1]
		began := time.Now()
		if !handOver {
			old.signal(t, syscall.SIGTERM)
			if code := old.Wait(t, 40*time.Second); code != 0 {
				t.Errorf("exit %d after SIGTERM, want 0", code)
			}
		}
		next := startFile(t, file)
		if handOver {
			since := next.WaitLog(t, `msg="hand-over: accepting on the inherited sockets".* since_start=(\S+)`)
			d, err := time.ParseDuration(since)
			if err != nil {
				t.Fatalf("since_start %q: %v", since, err)
			}
			toAccept = append(toAccept, d)
			old.WaitLog(t, `hand-over: the successor accepts; stopped accepting`)
		} else {
			next.listenAddr(t, "app")
			toAccept = append(toAccept, time.Since(began))
		}
		procs = append(procs, next)
	}
	time.Sleep(time.Second)
	fresh.Stop()
	long.Stop()
	last := procs[len(procs)-1]
	for i, p := range procs[:len(procs)-1] {
		if code := p.Wait(t, 40*time.Second); code != 0 {
			t.Errorf("process %d exited %d after the hand-over, want 0", i, code)
		}
	}
	ok, failed := fresh.Counts()
	done, cut, refused := long.Counts()
	if ok == 0 {
		t.Fatal("no new connection succeeded")
	}
	var fds int
	var rss float64
	settled := testkit.Within(20*time.Second, func() bool {
		fds, rss = last.fds(t), last.metric(t, "process_resident_memory_bytes")
		return fds <= fds0+2 && a.open.Load()+b.open.Load() == 0
	})
	slices.Sort(toAccept)
	gap := fmt.Sprintf("start to accepting %s–%s (median %s)", toAccept[0].Round(time.Millisecond), toAccept[len(toAccept)-1].Round(time.Millisecond), toAccept[len(toAccept)/2].Round(time.Millisecond))
	if !handOver {
		gap = fmt.Sprintf("no listener for %s–%s per restart (SIGTERM to the new one serving)", toAccept[0].Round(time.Millisecond), toAccept[len(toAccept)-1].Round(time.Millisecond))
		report(t, fmt.Sprintf("tierlb restart (SIGTERM, exit, start), %d in a row", upgrades), "measured",
			"%d new connections (%d/s), %d failed; %d long-lived connections moving bytes, %d cut, %d refused; %s",
			ok+failed, rate, failed, done+cut, cut, refused, gap)
		return
	}
	if failed > 0 {
		t.Errorf("%d of %d new connections failed (last: %s)", failed, ok+failed, fresh.LastErrors())
	}
	if cut > 0 || refused > 0 {
		t.Errorf("%d of %d long-lived connections cut, %d refused (last: %v)", cut, done+cut, refused, long.LastError())
	}
	if !settled {
		t.Errorf("after the upgrades: the last process holds %d descriptors (the first %d at start); backends hold %d connections",
			fds, fds0, a.open.Load()+b.open.Load())
	}
	report(t, fmt.Sprintf("tierlb upgrade by hand-over, %d in a row", upgrades), verdict(t),
		"%d new connections (%d/s), %d failed; %d long-lived connections moving bytes, %d cut; %s; last process fds %d, RSS %.1f MiB (first at start: %d, %.1f MiB)",
		ok+failed, rate, failed, done+cut, cut, gap, fds, rss/(1<<20), fds0, rss0/(1<<20))
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
