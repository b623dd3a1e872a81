package faults

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tierlb/tierlb/internal/testkit"
)

// TestFaultDescriptorLimit runs tierlb with 256 descriptors and sends it
// more silent clients than that can hold. Running out is tierlb's own
// trouble: no backend may be ejected or marked down for it, and once the
// clients leave a new one must be served at once.
func TestFaultDescriptorLimit(t *testing.T) {
	a, b := startEcho(t, "127.0.0.1:0"), startEcho(t, "127.0.0.1:0")
	cfg := fmt.Sprintf(`admin: {listen: 127.0.0.1:0}
log: {level: info, access: false}
services:
  - name: app
    listen: 127.0.0.1:0
    backends: {static: [%q, %q]}
    health: {type: tcp, interval: 1s, fall: 3}
`, a.addr(), b.addr())
	// The hard limit too: tierlb raises its soft limit to the hard one.
	p := start(t, "ulimit -n 256", cfg)
	addr := p.listenAddr(t, "app")
	testkit.Eventually(t, 10*time.Second, "the service answering", func() bool { return exchange(addr, []byte("x")) == nil })

	const clients = 400
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	for range clients {
		wg.Go(func() {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		})
	}
	wg.Wait()
	// Hold them past three health-check intervals and a burst of new
	// clients, which is when a local error mistaken for the backends'
	// would eject or mark them down.
	burst := testkit.NewPacer(t, testkit.Pace{Rate: 50, Count: 200, Within: 4 * time.Second})
	for burst.Next(t.Context()) {
		_ = exchange(addr, []byte("y"))
	}
	for _, c := range conns {
		c.Close()
	}
	released := time.Now()
	var firstOK time.Duration
	served := testkit.Within(30*time.Second, func() bool {
		if exchange(addr, []byte("z")) == nil {
			firstOK = time.Since(released)
			return true
		}
		time.Sleep(10 * time.Millisecond)
		return false
	})
	logs := p.Logs()
	ejected := strings.Count(logs, `msg="backend ejected"`)
	down := strings.Count(logs, `msg="backend down"`)
	local, _ := p.metricSum(t, "tierlb_local_errors_total{", `service="app"`)
	refused := p.metric(t, `tierlb_connections_rejected_total{reason="local_error",service="app"}`)
	switch {
	case !served:
		t.Errorf("no client served within 30s after the descriptors were free again")
	case firstOK > time.Second:
		t.Errorf("the first client after the squeeze was served %s after the descriptors were free, want at once", firstOK.Round(time.Millisecond))
	}
	if ejected > 0 || down > 0 {
		t.Errorf("running out of descriptors ejected backends %d times and marked them down %d times, want never", ejected, down)
	}
	if local < 1 || refused != local {
		t.Errorf("local errors counted %v, clients refused for them %v; want some, and equal", local, refused)
	}
	report(t, "descriptor limit (ulimit -n 256, 400 silent clients)", verdict(t), "%d clients held; %v backend dials failed locally (EMFILE), their clients refused at once; backends ejected %d, marked down %d; a new client served %s after the clients left",
		len(conns), local, ejected, down, firstOK.Round(time.Millisecond))
}
