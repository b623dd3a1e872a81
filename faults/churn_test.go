package faults

import (
	"testing"
	"time"

	"github.com/tierlb/tierlb/internal/testkit"
)

// TestFaultChurnLeak opens and closes connections through tierlb (10,000;
// 100,000 in the full suite) and wants its descriptors and goroutines back
// where they were.
func TestFaultChurnLeak(t *testing.T) {
	n := int64(10_000)
	if full() {
		n = 100_000
	}
	be := startEcho(t, "127.0.0.1:0")
	p := start(t, "", serviceConfig("127.0.0.1:0", "roundrobin", time.Hour, be.addr()))
	addr := p.listenAddr(t, "app")
	testkit.Eventually(t, 10*time.Second, "the service answering", func() bool { return exchange(addr, []byte("x")) == nil })
	fds0, gr0 := p.fds(t), p.metric(t, "go_goroutines")
	rss0 := p.metric(t, "process_resident_memory_bytes")

	began := time.Now()
	// Room for the paced load to finish on a slow machine: twice its
	// length at full rate, plus a minute.
	within := 2*time.Duration(float64(n)/testkit.MaxRate(n)*float64(time.Second)) + time.Minute
	l := startLoad(t, addr, 32, within, n)
	l.Wait()
	took := time.Since(began)
	ok, failed := l.Counts()
	if ok+failed != n {
		t.Errorf("the load ended after %d of %d connections", ok+failed, n)
	}
	if failed > 0 {
		t.Errorf("%d of %d connections failed (last: %v)", failed, n, l.LastErrors())
	}
	var fds int
	var gr float64
	// Pooled splice pipes close after a second without bursts.
	settled := testkit.Within(20*time.Second, func() bool {
		fds, gr = p.fds(t), p.metric(t, "go_goroutines")
		return fds <= fds0+2 && gr <= gr0+2 && be.open.Load() == 0
	})
	if !settled {
		t.Errorf("after %d connections: %d descriptors (%d before), %v goroutines (%v before), %d backend connections open",
			n, fds, fds0, gr, gr0, be.open.Load())
	}
	rss := p.metric(t, "process_resident_memory_bytes")
	report(t, "connection churn leak check", verdict(t), "%d connections in %s (%.0f/s), %d failed; fds %d→%d, goroutines %v→%v, RSS %.1f→%.1f MiB",
		n, took.Round(time.Millisecond), float64(n)/took.Seconds(), failed, fds0, fds, gr0, gr, rss0/(1<<20), rss/(1<<20))
}
