package faults

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/tierlb/tierlb/internal/testkit"
)

// serviceConfig is one service "app" over loopback echo backends.
func serviceConfig(listen, balance string, idle time.Duration, backends ...string) string {
	list := ""
	for _, b := range backends {
		list += fmt.Sprintf("%q, ", b)
	}
	return fmt.Sprintf(`admin: {listen: 127.0.0.1:0}
log: {level: info, access: false}
services:
  - name: app
    listen: %s
    balance: %s
    timeouts: {idle: %s}
    backends: {static: [%s]}
    health: {type: tcp, interval: 1s}
`, listen, balance, idle, list)
}

// TestFaultSIGHUPStorm reloads tierlb 200 times in two seconds, each time
// with a changed file, while clients open connections all along: none may
// fail, the process stays up, and nothing leaks.
func TestFaultSIGHUPStorm(t *testing.T) {
	a, b := startEcho(t, "127.0.0.1:0"), startEcho(t, "127.0.0.1:0")
	listen := testkit.ClosedPort(t)
	cfgs := []string{
		serviceConfig(listen, "roundrobin", time.Hour, a.addr(), b.addr()),
		serviceConfig(listen, "leastconn", 59*time.Minute, a.addr(), b.addr()),
	}
	p := start(t, "", cfgs[0])
	file := p.Cmd.Args[len(p.Cmd.Args)-1]
	addr := p.listenAddr(t, "app")
	testkit.Eventually(t, 10*time.Second, "the service answering", func() bool { return exchange(addr, []byte("x")) == nil })
	fds0, gr0 := p.fds(t), p.metric(t, "go_goroutines")

	const storm = 200
	l := startLoad(t, addr, 8, time.Minute, testkit.PortBudget)
	for i := range storm {
		// A whole new file each time, renamed into place as editors and
		// config management do, so tierlb never reads half a file.
		tmp := filepath.Join(filepath.Dir(file), "next.yaml")
		if err := os.WriteFile(tmp, []byte(cfgs[(i+1)%2]), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
		p.signal(t, syscall.SIGHUP)
		time.Sleep(10 * time.Millisecond)
	}
	// Clients keep coming while the last reloads settle.
	time.Sleep(500 * time.Millisecond)
	l.Stop()
	if !p.Alive() {
		t.Fatalf("tierlb exited during the SIGHUP storm:\n%s", p.Logs())
	}
	ok, failed := l.Counts()
	if failed > 0 {
		t.Errorf("%d of %d connections failed during the storm (last: %v)", failed, ok+failed, l.LastErrors())
	}
	if ok == 0 {
		t.Fatal("no connection succeeded during the storm")
	}
	reloads := p.metric(t, `tierlb_config_reloads_total{result="ok"}`)
	rejected := p.metric(t, `tierlb_config_reloads_total{result="error"}`)
	if reloads < 1 || rejected > 0 {
		t.Errorf("reloads: %v ok, %v rejected; want some ok, none rejected", reloads, rejected)
	}
	var fds int
	var gr float64
	settled := testkit.Within(15*time.Second, func() bool {
		fds, gr = p.fds(t), p.metric(t, "go_goroutines")
		return fds <= fds0+2 && gr <= gr0+2
	})
	if !settled {
		t.Errorf("after the storm: %d descriptors (%d before), %v goroutines (%v before)", fds, fds0, gr, gr0)
	}
	report(t, "SIGHUP storm under load", verdict(t), "%d SIGHUPs in %s (%v reloads applied, coalesced), %d connections, %d failed; fds %d→%d, goroutines %v→%v",
		storm, storm*10*time.Millisecond, reloads, ok+failed, failed, fds0, fds, gr0, gr)
}
