package docker

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// TestE2EStreamCutUnderLoad cuts tierlb's connection to the engine and
// refuses it for seconds while clients connect all along: the last known
// replicas keep serving with no failed connection, and once the engine is
// back a replica stopped by the new event stream is drained with none
// either.
func TestE2EStreamCutUnderLoad(t *testing.T) {
	e := engine(t)
	host := e.DaemonHost()
	if !strings.HasPrefix(host, "unix://") {
		t.Skipf("engine at %s is not a unix socket; the cut proxy needs one", host)
	}
	sp := newSockProxy(t, strings.TrimPrefix(host, "unix://"))
	// tierlb runs as a non-root user; the proxy's socket is bind-mounted.
	if err := os.Chmod(sp.ln.Addr().String(), 0o666); err != nil {
		t.Fatal(err)
	}
	s := newE2EStackVia(t, sp.ln.Addr().String(), rollingService)
	p := s.composeApp(3, "--listen", ":8080")
	waitFor(t, 60*time.Second, "3 replicas up", func() bool { return s.settled("app", 3) })

	load := startLoad(t, s.front, 8, 3*time.Minute, 2_000_000)
	ok0, _ := load.counts()
	outage := time.Now()
	sp.setRefuse(true)
	sp.cut()
	before := sp.acceptCount()
	waitFor(t, 20*time.Second, "tierlb retrying the engine", func() bool { return sp.acceptCount() >= before+2 })
	time.Sleep(2 * time.Second) // serving on the last known replicas
	readyz, _ := s.get("/readyz")
	sp.setRefuse(false)
	down := time.Since(outage)
	ok1, failedOutage := load.counts()

	// The resubscribed stream drains a stopped replica.
	id := p.ids(t.Context())[0]
	if _, err := s.cli.ContainerStop(t.Context(), id, client.ContainerStopOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the stopped replica removed", func() bool { return s.settled("app", 2) })
	load.stop()
	ok2, failed := load.counts()
	t.Logf("fault: event-stream cut under load | %s | engine unreachable %s: %d connections, %d failed, /readyz %d meanwhile; after reconnect a docker stop drained: %d connections, %d failed",
		map[bool]string{true: "ok", false: "FAIL"}[failed == 0], down.Round(100*time.Millisecond), ok1-ok0+failedOutage, failedOutage, readyz, ok2-ok1+failed-failedOutage, failed-failedOutage)
	if failed > 0 {
		t.Errorf("%d connections failed (last: %s)", failed, load.lastErrors())
	}
}
