package docker

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/tierlb/tierlb/internal/testkit"
)

// rollingService is balanced over compose replicas with tcp checks, as a
// user would run it: a new replica joins after its first passing probe.
const rollingService = `  - name: app
    listen: 0.0.0.0:8080
    timeouts: {connect: 1s}
    backends: {docker: {service: app, port: 8080}}
    health: {type: tcp, interval: 500ms, rise: 1}
`

// TestRollingRestartsLoseNothing cycles whoami replicas behind tierlb in
// every way an operator does, under a steady load of new connections, and
// counts the connections that fail. With the replicas' lame-duck period
// none may fail, except under docker kill, where only the connections in
// flight on the killed replica can. TIERLB_ROLLING_COMPARE=1 also runs the
// replicas without a lame-duck period and logs what that costs
// (scripts/faults.sh prints both).
func TestRollingRestartsLoseNothing(t *testing.T) {
	lameDucks := []time.Duration{3 * time.Second}
	if os.Getenv("TIERLB_ROLLING_COMPARE") == "1" {
		lameDucks = append([]time.Duration{0}, lameDucks...)
	}
	for _, ld := range lameDucks {
		t.Run("lame_duck="+ld.String(), func(t *testing.T) { rolling(t, ld, ld > 0, len(lameDucks) > 1) })
	}
}

type restartKind struct {
	name string
	// scale is the replica count the action leaves.
	scale int
	do    func(t *testing.T, p *composeProject)
	// killed: connections in flight on the replica may fail.
	killed bool
	// allAtOnce: every replica goes at once, so connections fail.
	allAtOnce bool
}

// rolling runs every restart kind; strict asserts the promise, compare
// adds the kinds that cannot keep it.
func rolling(t *testing.T, lameDuck time.Duration, strict, compare bool) {
	s := newE2EStack(t, rollingService)
	p := s.composeApp(3, "--listen", ":8080", "--lame-duck", lameDuck.String())
	settle := func(n int) {
		t.Helper()
		testkit.Eventually(t, 60*time.Second, fmt.Sprintf("%d replicas up in tierlb", n), func() bool { return s.settled("app", n) })
	}
	settle(3)
	first := func(p *composeProject) string {
		ids := p.ids(t.Context())
		if len(ids) == 0 {
			t.Fatal("no compose replicas")
		}
		return ids[0]
	}
	var kinds []restartKind
	if compare {
		// Compose recreates every replica at once (stop, then create): no
		// lame duck helps, which is why scripts/rollout.sh exists.
		kinds = append(kinds, restartKind{name: "compose up -d --force-recreate", scale: 3, allAtOnce: true, do: func(t *testing.T, p *composeProject) {
			p.run("up", "-d", "--force-recreate", "--scale", "app=3")
		}})
	}
	kinds = append(kinds, []restartKind{
		{name: "docker restart", scale: 3, do: func(t *testing.T, p *composeProject) {
			if _, err := s.cli.ContainerRestart(t.Context(), first(p), client.ContainerRestartOptions{}); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "docker stop + start", scale: 3, do: func(t *testing.T, p *composeProject) {
			id := first(p)
			if _, err := s.cli.ContainerStop(t.Context(), id, client.ContainerStopOptions{}); err != nil {
				t.Fatal(err)
			}
			s.start(id)
		}},
		{name: "compose --scale 3→6", scale: 6, do: func(t *testing.T, p *composeProject) {
			p.run("up", "-d", "--no-recreate", "--scale", "app=6")
		}},
		{name: "compose --scale 6→3", scale: 3, do: func(t *testing.T, p *composeProject) {
			p.run("up", "-d", "--no-recreate", "--scale", "app=3")
		}},
		{name: "scripts/rollout.sh (recreate)", scale: 3, do: func(t *testing.T, p *composeProject) {
			p.rollout("app", "http://"+s.admin)
		}},
		{name: "docker kill + start", scale: 3, killed: true, do: func(t *testing.T, p *composeProject) {
			id := first(p)
			if _, err := s.cli.ContainerKill(t.Context(), id, client.ContainerKillOptions{Signal: "SIGKILL"}); err != nil {
				t.Fatal(err)
			}
			testkit.Eventually(t, 20*time.Second, "killed replica removed", func() bool { return s.settled("app", 2) })
			s.start(id)
		}},
	}...)

	const workers = 8
	load := startConnLoad(t, s.front, workers, 5*time.Minute)
	for _, k := range kinds {
		began := time.Now()
		ok0, failed0 := load.Counts()
		k.do(t, p)
		settle(k.scale)
		ok1, failed1 := load.Counts()
		failed := failed1 - failed0
		t.Logf("rolling: lame_duck=%s kind=%q requests=%d failed=%d", lameDuck, k.name, ok1-ok0+failed, failed)
		if failed > 0 {
			t.Logf("last failures: %s", load.LastErrors())
			t.Logf("tierlb's unusual lines meanwhile:\n%s", unusual(s.logs(), began))
		}
		if !strict || k.allAtOnce {
			continue
		}
		switch {
		case k.killed && failed > workers:
			// A SIGKILL breaks the connections open to that replica at
			// that instant: at most one per worker, each of which waits
			// for its answer before its next connection. (Sampling the
			// in-flight count before the kill raced the kill under load.)
			// More means tierlb sent new connections to the dead replica.
			t.Errorf("%s: %d connections failed, more than one per load worker (%d)", k.name, failed, workers)
		case !k.killed && failed > 0:
			t.Errorf("%s: %d connections failed, want 0", k.name, failed)
		}
	}
	load.Stop()
	if ok, _ := load.Counts(); ok == 0 {
		t.Fatal("the load loop got no answer at all")
	}
}

// unusual returns tierlb's log lines since a time, except the access lines
// of connections that ended normally: what explains a failed connection.
func unusual(logs string, since time.Time) string {
	var out []string
	for line := range strings.SplitSeq(logs, "\n") {
		ts, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || at.Before(since) {
			continue
		}
		if strings.Contains(line, "msg=connection ") && (strings.Contains(line, "end=client_close") || strings.Contains(line, "end=backend_close")) {
			d := line[strings.LastIndex(line, "duration=")+len("duration="):]
			d, _, _ = strings.Cut(d, " ")
			if dur, err := time.ParseDuration(d); err == nil && dur < time.Second {
				continue
			}
		}
		out = append(out, line)
	}
	return strings.Join(out[max(0, len(out)-200):], "\n")
}
