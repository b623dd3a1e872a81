package docker

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/tierlb/tierlb/internal/testkit"
)

// appService is the service every end-to-end test balances: replicas
// labelled service=app, no active check so that only discovery decides.
const appService = `  - name: app
    listen: 0.0.0.0:8080
    retries: 2
    timeouts: {connect: 500ms}
    backends: {docker: {service: app, port: 8080}}
    health: {type: none}
`

func TestE2ERoundRobinStopKill(t *testing.T) {
	s := newE2EStack(t, appService)
	labels := map[string]string{s.label("service"): "app"}
	ids := map[string]string{} // replica name → container ID
	for i := 1; i <= 3; i++ {
		n := fmt.Sprintf("r%d", i)
		// r1 ignores its stop signal, so a stop takes the whole timeout.
		ids[n] = s.run(n, runOpts{nets: []string{s.app}, labels: labels, args: []string{"--listen", ":8080", "--name", n}, stopSignal: "SIGUSR1", stopTimeout: 3})
	}
	testkit.Eventually(t, 15*time.Second, "three replicas through tierlb", func() bool {
		seen := map[string]bool{}
		for range 6 {
			if n, err := ask(s.front); err == nil {
				seen[n] = true
			}
		}
		return len(seen) == 3
	})

	// Exact round robin: every window of three new connections hits each
	// replica once.
	var got []string
	for range 30 {
		n, err := ask(s.front)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, n)
	}
	for i := 3; i < len(got); i++ {
		if got[i] != got[i-3] {
			t.Fatalf("not an exact rotation: %v", got)
		}
	}

	// docker stop of r1 with a connection open to it: no new connection
	// reaches r1 once tierlb has the stop event; the open one keeps working
	// until r1 exits.
	var held net.Conn
	for range 20 {
		c, err := net.DialTimeout("tcp", s.front, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := askOn(c); err == nil && n == "r1" {
			held = c
			break
		}
		c.Close()
	}
	if held == nil {
		t.Fatal("no connection landed on r1")
	}
	defer held.Close()
	evs := s.follow(ids["r1"])
	stopped := make(chan error, 1)
	go func() {
		_, err := s.cli.ContainerStop(context.Background(), ids["r1"], client.ContainerStopOptions{})
		stopped <- err
	}()
	stopAt := s.await(evs, events.ActionKill)
	// When each ask that r1 answered began; r1 lives on for 3s after the
	// stop.
	var hits []time.Time
	asks := testkit.NewPacer(t, testkit.Pace{Rate: testkit.ShortRate, Count: 2 * testkit.ShortRate, Within: 2 * time.Second})
	for asks.Next(t.Context()) {
		began := time.Now()
		if n, err := ask(s.front); err == nil && n == "r1" {
			hits = append(hits, began)
		}
	}
	if n, err := askOn(held); err != nil || n != "r1" {
		t.Errorf("the connection open to r1 broke while it was stopping: %q, %v", n, err)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	// This client hears the stop event as tierlb does and asks at once, so
	// the line is tierlb's drain (logged after its pool swap), a fraction
	// of a millisecond after the event.
	logs := s.logs()
	drainAt := lastDrain(logs, s.prefix+"-r1")
	if drainAt.IsZero() {
		t.Fatal(`tierlb logged no "backend draining" line for r1`)
	}
	if n := connsAfter(hits, drainAt); n > 0 {
		t.Errorf("%d new connections reached r1 after tierlb drained it on docker stop", n)
	}
	if late := connsAfter(connStarts(logs, s.prefix+"-r1"), drainAt); late > 0 {
		t.Errorf("tierlb logged %d connections to r1 begun after it drained r1", late)
	}
	if lag := drainAt.Sub(stopAt); lag > 250*time.Millisecond {
		t.Errorf("tierlb drained r1 %s after the stop event, want under 250ms", lag)
	}

	// docker kill of r2 between two requests, then traffic at once: the
	// connections tierlb still sends to r2 before it hears of the kill
	// fail to dial and must be retried on r3, unseen by clients.
	failures, asked := 0, 0
	asks = testkit.NewPacer(t, testkit.Pace{Rate: testkit.ShortRate, Count: 200, Within: time.Minute})
	for ; asks.Next(t.Context()); asked++ {
		if asked == 20 {
			if _, err := s.cli.ContainerKill(t.Context(), ids["r2"], client.ContainerKillOptions{Signal: "SIGKILL"}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := ask(s.front); err != nil {
			failures++
		}
	}
	if failures > 0 || asked < 200 {
		t.Errorf("%d of %d requests failed around docker kill (200 asked for)", failures, asked)
	}
}

// TestE2EStartStopLatency measures the closing figures through the
// proxy container, ten times each: from the start event to the first
// proxied connection of a new replica (at most 1s), and from the stop event
// to the last new connection tierlb sends the stopping replica (none may
// begin once tierlb has drained it, which must happen within 250ms of the
// event).
//
// The service runs tcp checks, the default type, every 250ms: a replica
// joins only once a check has passed (a container's process often listens
// a few milliseconds after its start event), and the first check runs as
// soon as discovery adds it.
func TestE2EStartStopLatency(t *testing.T) {
	s := newE2EStack(t, `  - name: app
    listen: 0.0.0.0:8080
    backends: {docker: {service: app, port: 8080}}
    health: {type: tcp, interval: 250ms, rise: 1}
`)
	labels := map[string]string{s.label("service"): "app"}
	s.run("base", runOpts{nets: []string{s.app}, labels: labels, args: []string{"--listen", ":8080", "--name", "base"}})
	testkit.Eventually(t, 15*time.Second, "base through tierlb", func() bool { n, _ := ask(s.front); return n == "base" })

	// One replica started and stopped ten times: a restarted container is
	// a new backend to tierlb, and reusing it keeps the test short.
	id := s.run("s", runOpts{nets: []string{s.app}, labels: labels, args: []string{"--listen", ":8080", "--name", "s"}, stopSignal: "SIGUSR1", stopTimeout: 1, noStart: true})
	evs := s.follow(id)
	var startLat, lastNew, drainLag []time.Duration
	var late, lateAfterEvent int
	for range 10 {
		s.start(id)
		startAt := s.await(evs, events.ActionStart)
		var first time.Duration
		testkit.Eventually(t, 5*time.Second, "s proxied", func() bool {
			got, err := ask(s.front)
			first = time.Since(startAt)
			return err == nil && got == "s"
		})
		startLat = append(startLat, first)

		// New connections all along the stop, which lasts the 1s timeout
		// because the replica ignores SIGUSR1.
		stopped := make(chan error, 1)
		go func() {
			_, err := s.cli.ContainerStop(context.Background(), id, client.ContainerStopOptions{})
			stopped <- err
		}()
		stopAt := s.await(evs, events.ActionKill)
		asks := testkit.NewPacer(t, testkit.Pace{Rate: testkit.ShortRate, Count: testkit.ShortRate, Within: 300 * time.Millisecond})
		for asks.Next(t.Context()) {
			_, _ = ask(s.front)
		}
		if err := <-stopped; err != nil {
			t.Fatal(err)
		}
		logs := s.logs()
		var starts []time.Time // this run's connections only
		for _, c := range connStarts(logs, s.prefix+"-s") {
			if !c.Before(startAt.Truncate(time.Millisecond)) {
				starts = append(starts, c)
			}
		}
		if len(starts) == 0 {
			t.Fatal("no access log line for s since its start")
		}
		drainAt := lastDrain(logs, s.prefix+"-s")
		if drainAt.Before(startAt.Truncate(time.Millisecond)) {
			t.Fatal("tierlb logged no \"backend draining\" line for s after its stop event")
		}
		lastNew = append(lastNew, starts[len(starts)-1].Sub(stopAt))
		drainLag = append(drainLag, drainAt.Sub(stopAt))
		late += connsAfter(starts, drainAt)
		lateAfterEvent += connsAfter(starts, stopAt)
	}
	t.Logf("start event → first proxied connection: median %s %v", median(startLat), startLat)
	t.Logf("stop event → last new connection to the replica (negative: before the event): median %s %v; begun after the event: %d",
		median(lastNew), lastNew, lateAfterEvent)
	t.Logf("stop event → tierlb's drain: median %s %v; connections begun after the drain: %d", median(drainLag), drainLag, late)
	for _, d := range startLat {
		if d > time.Second {
			t.Errorf("a new replica waited %s for its first connection, want at most 1s: %v", d, startLat)
			break
		}
	}
	// tierlb cannot act before the event reaches it, and this test's own
	// client hears the same event and starts connecting at once: the
	// promise is that nothing is sent once tierlb has the event, which its
	// "backend draining" line (logged after the pool swap) marks.
	if late > 0 {
		t.Errorf("%d new connections reached stopping replicas after tierlb drained them", late)
	}
	for _, d := range drainLag {
		if d > 250*time.Millisecond {
			t.Errorf("tierlb drained a stopping replica %s after the stop event, want under 250ms: %v", d, drainLag)
			break
		}
	}
}

// drainLine matches the provider's log line for a replica leaving rotation.
var drainLine = regexp.MustCompile(`time=(\S+) level=INFO msg="backend draining" .*?backend=(\S+) `)

// lastDrain returns when tierlb last took backend out of rotation (the
// zero time if never).
func lastDrain(logs, backend string) time.Time {
	var at time.Time
	for _, m := range drainLine.FindAllStringSubmatch(logs, -1) {
		if m[2] != backend {
			continue
		}
		if t, err := time.Parse(time.RFC3339Nano, m[1]); err == nil {
			at = t
		}
	}
	return at
}

// connsAfter counts connections begun after at. Log times have millisecond
// precision, so a connection begun in the same millisecond is not counted.
func connsAfter(starts []time.Time, at time.Time) int {
	n := 0
	for _, s := range starts {
		if s.After(at.Truncate(time.Millisecond).Add(time.Millisecond)) {
			n++
		}
	}
	return n
}

// TestE2ELabelServiceHealthExplain covers what the proxy container does
// with labels beyond one configured service: a service declared by
// tierlb.listen starts listening and stops when its last replica goes; with
// health type docker a replica whose HEALTHCHECK fails gets nothing; a
// replica on no network tierlb shares is explained, not routed.
func TestE2ELabelServiceHealthExplain(t *testing.T) {
	s := newE2EStack(t, `  - name: app
    listen: 0.0.0.0:8080
    backends: {docker: {service: app, port: 8080}}
    health: {type: docker, interval: 500ms, rise: 1, fall: 1}
`, 9000)
	app := map[string]string{s.label("service"): "app"}
	healthy := &container.HealthConfig{Test: []string{"CMD", "/whoami", "--probe", "127.0.0.1:8080"}, Interval: 500 * time.Millisecond, Timeout: time.Second, Retries: 1}
	sick := &container.HealthConfig{Test: []string{"CMD", "/whoami", "--probe", "127.0.0.1:1"}, Interval: 500 * time.Millisecond, Timeout: time.Second, Retries: 1}
	s.run("good", runOpts{nets: []string{s.app}, labels: app, args: []string{"--listen", ":8080", "--name", "good"}, health: healthy})
	s.run("plain", runOpts{nets: []string{s.app}, labels: app, args: []string{"--listen", ":8080", "--name", "plain"}})
	s.run("sick", runOpts{nets: []string{s.app}, labels: app, args: []string{"--listen", ":8080", "--name", "sick"}, health: sick})
	elsewhere := s.network("elsewhere")
	s.run("far", runOpts{nets: []string{elsewhere}, labels: app, args: []string{"--listen", ":8080", "--name", "far"}})

	// Healthy and no-HEALTHCHECK replicas share the traffic; the sick and
	// the unreachable one get none, and explain says why.
	testkit.Eventually(t, 20*time.Second, "good and plain in rotation", func() bool {
		seen := map[string]bool{}
		for range 4 {
			if n, err := ask(s.front); err == nil {
				seen[n] = true
			}
		}
		return seen["good"] && seen["plain"]
	})
	testkit.Eventually(t, 10*time.Second, "sick explained", func() bool {
		_, body := s.get("/api/v1/explain")
		return strings.Contains(body, "docker health is unhealthy") && strings.Contains(body, "the proxy is not on network "+elsewhere)
	})
	for range 20 {
		if n, err := ask(s.front); err != nil || (n != "good" && n != "plain") {
			t.Fatalf("got %q, %v; want only good and plain", n, err)
		}
	}

	// A label-declared service on the published port 9000.
	db := s.run("db", runOpts{nets: []string{s.app}, args: []string{"--listen", ":8080", "--name", "db"}, labels: map[string]string{
		s.label("service"): "db", s.label("listen"): "0.0.0.0:9000", s.label("port"): "8080", s.label("health.type"): "tcp",
	}})
	testkit.Eventually(t, 10*time.Second, "db through its own listener", func() bool { n, _ := ask(s.ports[9000]); return n == "db" })
	if _, err := s.cli.ContainerRemove(t.Context(), db, client.ContainerRemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "db's listener closed", func() bool {
		return strings.Contains(s.logs(), `msg="service removed: draining" service=db`)
	})
	if n, err := ask(s.ports[9000]); err == nil {
		t.Errorf("db still answers (%q) after its only replica was removed", n)
	}
}

// follow subscribes to one container's events.
func (s *e2eStack) follow(id string) client.EventsResult {
	ctx, cancel := context.WithCancel(context.Background())
	s.t.Cleanup(cancel)
	return s.cli.Events(ctx, client.EventsListOptions{Filters: make(client.Filters).Add("container", id)})
}

// await returns the daemon's time of the next event with this action.
func (s *e2eStack) await(res client.EventsResult, action events.Action) time.Time {
	s.t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case m := <-res.Messages:
			if m.Action == action {
				return time.Unix(0, m.TimeNano)
			}
		case err := <-res.Err:
			s.t.Fatalf("event stream: %v", err)
		case <-timeout:
			s.t.Fatalf("no %s event within 20s", action)
		}
	}
}
