package faults

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/tierlb/tierlb/internal/testkit"
)

// TestFaultIdleHoarding opens 3,000 connections that never send a byte,
// 100 from each of 30 client addresses, and counts the descriptors tierlb
// holds for them: by default, with max_conns_per_client, with defer_dial,
// and with both.
func TestFaultIdleHoarding(t *testing.T) {
	needFull(t)
	const addrs, perAddr = 30, 100
	modes := []struct {
		name, extra  string // extra: the service's added keys
		backendConns int    // what the backend should see held
		deferred     bool
	}{
		{"defaults", "", addrs * perAddr, false},
		{"max_conns_per_client: 10", "    max_conns_per_client: 10\n", addrs * 10, false},
		{"defer_dial: true", "    defer_dial: true\n    timeouts: {first_data: 3s}\n", 0, true},
		{"both", "    max_conns_per_client: 10\n    defer_dial: true\n    timeouts: {first_data: 3s}\n", 0, true},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			be := startEcho(t, "127.0.0.1:0")
			extra := m.extra
			p := start(t, "", fmt.Sprintf(`admin: {listen: 127.0.0.1:0}
log: {level: info, access: false}
services:
  - name: app
    listen: 127.0.0.1:0
    backends: {static: [%q]}
    health: {type: none}
%s`, be.addr(), extra))
			addr := p.listenAddr(t, "app")
			fds0 := p.fds(t)
			var (
				mu    sync.Mutex
				conns []net.Conn
				wg    sync.WaitGroup
			)
			for i := range addrs {
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(10+i))}, Timeout: 10 * time.Second}
				wg.Go(func() {
					for range perAddr {
						c, err := d.Dial("tcp", addr)
						if err != nil {
							continue
						}
						mu.Lock()
						conns = append(conns, c)
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			t.Cleanup(func() {
				for _, c := range conns {
					c.Close()
				}
			})
			accepted := `tierlb_connections_accepted_total{service="app"}`
			testkit.Eventually(t, 30*time.Second, "every connection accepted", func() bool { return p.metric(t, accepted) == addrs*perAddr })
			testkit.Eventually(t, 30*time.Second, "the backend holding what it should", func() bool { return be.open.Load() == int64(m.backendConns) })
			var fds int
			testkit.Eventually(t, 30*time.Second, "tierlb's descriptors settled", func() bool {
				fds = p.fds(t)
				return fds == p.fds(t)
			})
			refused := p.metric(t, `tierlb_connections_rejected_total{reason="max_conns_per_client",service="app"}`)
			after := ""
			if m.deferred {
				began := time.Now()
				// Every silent client held is closed and counted; the
				// descriptors then go back to about what tierlb had before
				// (it opens a few lazily, so not exactly).
				held := float64(addrs*perAddr) - refused
				closed := `tierlb_connections_rejected_total{reason="no_client_data",service="app"}`
				testkit.Eventually(t, 60*time.Second, "the silent clients closed after first_data", func() bool { return p.metric(t, closed) == held })
				if left := p.fds(t); left > fds0+3 {
					t.Errorf("after closing the silent clients tierlb holds %d descriptors, %d before them", left, fds0)
				}
				after = fmt.Sprintf("; all closed %s later (first_data: 3s)", time.Since(began).Round(100*time.Millisecond))
			}
			report(t, "idle hoarding: 3,000 silent clients, "+m.name, verdict(t), "tierlb holds %d descriptors for them, the backend %d connections; %v refused by max_conns_per_client%s",
				fds-fds0, be.open.Load(), refused, after)
		})
	}
}
