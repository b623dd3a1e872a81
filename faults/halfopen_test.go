package faults

import (
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/tierlb/tierlb/internal/testkit"
)

// TestFaultHalfOpenClient: a client in another network namespace opens a
// connection through tierlb and vanishes without a FIN. TCP keepalive
// (60s idle, then 4 probes 15s apart) must find it and close both legs,
// about two minutes later.
func TestFaultHalfOpenClient(t *testing.T) {
	needFull(t)
	ns := newNetns(t)
	be := startEcho(t, "127.0.0.1:0")
	p := start(t, "", serviceConfig(ns.hostIP+":0", "roundrobin", time.Hour, be.addr()))
	addr := p.listenAddr(t, "app")
	c := ns.dial(t, addr)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "hello\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 6)); err != nil {
		t.Fatalf("echo through tierlb from the namespace: %v", err)
	}
	active := fmt.Sprintf(`tierlb_backend_connections_active{backend=%q,service="app"}`, be.addr())
	if got := p.metric(t, active); got != 1 {
		t.Fatalf("%s = %v, want 1", active, got)
	}
	ns.vanish(t)
	gone := time.Now()
	testkit.Eventually(t, 4*time.Minute, "tierlb closing the half-open connection", func() bool {
		time.Sleep(100 * time.Millisecond) // a scrape every 0.1s is plenty for minutes
		return p.metric(t, active) == 0 && be.open.Load() == 0
	})
	took := time.Since(gone)
	if took < 100*time.Second || took > 150*time.Second {
		t.Errorf("closed %s after the client vanished, want about 2m (keepalive 60s + 4×15s)", took.Round(time.Second))
	}
	report(t, "half-open client (netns, link down)", verdict(t), "both legs closed %s after the client vanished (keepalive: 60s + 4×15s)", took.Round(time.Second))
}
