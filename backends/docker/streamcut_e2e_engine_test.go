package docker

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/tierlb/tierlb/internal/testkit"
)

// TestE2EStreamCutUnderLoad cuts tierlb's connection to the engine and
// refuses it for seconds while clients connect all along, and stops a
// replica during the outage: the last known replicas keep serving, and when
// tierlb is back it hears of the stop (the engine replays what it missed)
// and drains the replica while it is still serving. No connection fails.
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
	// A lame duck longer than tierlb's reconnect backoff during the test.
	p := s.composeApp(3, "--listen", ":8080", "--lame-duck", "8s")
	testkit.Eventually(t, 60*time.Second, "3 replicas up", func() bool { return s.settled("app", 3) })

	load := startConnLoad(t, s.front, 8, 3*time.Minute)
	outage := time.Now()
	sp.setRefuse(true)
	sp.cut()
	before := sp.acceptCount()
	testkit.Eventually(t, 20*time.Second, "tierlb retrying the engine", func() bool { return sp.acceptCount() >= before+2 })
	stopped := make(chan error, 1)
	go func() {
		_, err := s.cli.ContainerStop(context.Background(), p.ids(t.Context())[0], client.ContainerStopOptions{})
		stopped <- err
	}()
	time.Sleep(time.Second) // the stop's events happen while tierlb cannot hear them
	readyz, _ := s.get("/readyz")
	sp.setRefuse(false)
	down := time.Since(outage)
	testkit.Eventually(t, 30*time.Second, "the stopped replica out of rotation", func() bool {
		st := s.serviceStates("app")
		return len(st) == 3 && slices.Contains(st, "draining") || len(st) == 2
	})
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 30*time.Second, "the stopped replica removed", func() bool { return s.settled("app", 2) })
	load.Stop()
	ok, failed := load.Counts()
	t.Logf("fault: event-stream cut under load | %s | engine unreachable %s, a replica stopped meanwhile (drained on reconnect from the replayed events); %d connections, %d failed, /readyz %d during the outage",
		map[bool]string{true: "ok", false: "FAIL"}[failed == 0], down.Round(100*time.Millisecond), ok+failed, failed, readyz)
	if failed > 0 {
		t.Errorf("%d connections failed (last: %s)", failed, load.LastErrors())
	}
	if !strings.Contains(s.logs(), `reason="container stopping"`) {
		t.Error("tierlb did not drain the replica stopped during the outage at its stop")
	}
}
