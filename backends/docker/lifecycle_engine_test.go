package docker

import (
	"context"
	"io"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/tierlb/tierlb/backends"
	"github.com/tierlb/tierlb/internal/testkit"
)

// countingClient counts container lists, to prove that many relists
// happened. The provider reads lists with its own requests (see getter).
type countingClient struct {
	client.APIClient
	lists atomic.Int64
	http  getter
}

func newCountingClient(cli client.APIClient) *countingClient {
	return &countingClient{APIClient: cli, http: newHTTPGetter(cli)}
}

func (c *countingClient) GetBody(ctx context.Context, path string, f client.Filters) (io.ReadCloser, error) {
	if path == "/containers/json" {
		c.lists.Add(1)
	}
	return c.http.GetBody(ctx, path, f)
}

func TestEngineAddressChoice(t *testing.T) {
	e := newTestEnv(t)
	// "a-only" sorts before "z-shared": taking the first network of the
	// backend instead of the intersection would pick the wrong one.
	only := e.network("a-only")
	shared := e.network("z-shared")
	other := e.network("m-other")
	proxy := e.run("proxy", runOpts{nets: []string{shared}})
	e.run("two", runOpts{nets: []string{only, shared}, labels: map[string]string{e.label("service"): "app"}})
	e.run("lonely", runOpts{nets: []string{other}, labels: map[string]string{e.label("service"): "app"}})

	sink := newFakeSink()
	cc := newCountingClient(e.cli)
	p := e.provider(Config{ContainerID: proxy}, []ServiceSelector{{Name: "app"}}, sink, cc)
	want := sink.get("app")
	if len(want) != 1 || want[0].Network != shared || want[0].ID != e.prefix+"-two" || !strings.HasPrefix(want[0].Address, "172.31.") || !strings.HasSuffix(want[0].Address, ":8080") {
		t.Fatalf("specs = %+v, want one on %s", want, shared)
	}
	for i := range 20 {
		before := cc.lists.Load()
		p.SetServices([]ServiceSelector{{Name: "app"}})
		testkit.Eventually(t, 5*time.Second, "a relist", func() bool { return cc.lists.Load() > before })
		// publish happens after the list; wait for explain to settle on this relist
		testkit.Eventually(t, 5*time.Second, "explain", func() bool { return len(p.Explain()) == 2 })
		if got := sink.get("app"); !slices.Equal(got, want) {
			t.Fatalf("relist %d: specs flipped to %+v", i, got)
		}
	}
	var lonely *Explanation
	for _, x := range p.Explain() {
		if x.Name == e.prefix+"-lonely" {
			lonely = &x
		}
	}
	if lonely == nil || lonely.Routed || !strings.Contains(lonely.Reason, "no network shared with the proxy") || !strings.Contains(lonely.Reason, other) {
		t.Fatalf("lonely explained as %+v", lonely)
	}
}

// TestEngineLifecycle measures start → spec and stop → drain on the real
// engine, ten times each, and checks the drain comes before the container
// dies. The replica ignores its stop signal (SIGUSR1 is caught and ignored
// by Go programs), so Docker kills it after --stop-timeout: the window in
// which a Traefik-like provider would still send it new connections.
func TestEngineLifecycle(t *testing.T) {
	e := newTestEnv(t)
	net := e.network("app")
	proxy := e.run("proxy", runOpts{nets: []string{net}})
	sink := newFakeSink()
	e.provider(Config{ContainerID: proxy}, []ServiceSelector{{Name: "app"}}, sink, nil)

	const rounds = 10
	var startLat, drainLat []time.Duration
	for i := range rounds {
		id := e.run("r"+string(rune('0'+i)), runOpts{
			nets: []string{net}, labels: map[string]string{e.label("service"): "app"},
			stopSignal: "SIGUSR1", stopTimeout: 1, noStart: true,
		})
		has := func(drain string) bool {
			for _, s := range sink.get("app") {
				if s.Container == id && s.Drain == drain {
					return true
				}
			}
			return false
		}
		gone := func() bool {
			return !slices.ContainsFunc(sink.get("app"), func(s backends.Spec) bool { return s.Container == id })
		}
		e.start(id)
		testkit.Eventually(t, time.Second, "spec within 1s of docker start returning", func() bool { return has("") })
		st, err := e.cli.ContainerInspect(t.Context(), id, client.ContainerInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// From the moment the engine marked the container running (just
		// before it sends the start event) to the spec reaching the sink.
		startedAt, err := time.Parse(time.RFC3339Nano, st.Container.State.StartedAt)
		if err != nil {
			t.Fatal(err)
		}
		seen, _ := sink.times(id)
		startLat = append(startLat, seen.Sub(startedAt))

		stopped := make(chan error, 1)
		t1 := time.Now()
		go func() {
			_, err := e.cli.ContainerStop(t.Context(), id, client.ContainerStopOptions{})
			stopped <- err
		}()
		testkit.Eventually(t, time.Second, "drain after stop", func() bool { return has("container stopping") })
		_, drained := sink.times(id)
		drainLat = append(drainLat, drained.Sub(t1))
		st, err = e.cli.ContainerInspect(t.Context(), id, client.ContainerInspectOptions{})
		if err != nil || !st.Container.State.Running {
			t.Fatalf("drain came after the container stopped (state %+v, %v)", st.Container.State, err)
		}
		if err := <-stopped; err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 2*time.Second, "removal after die", gone)
	}
	t.Logf("container running → spec: median %s %v", median(startLat), startLat)
	t.Logf("ContainerStop called → drain: median %s %v", median(drainLat), drainLat)
	if m := median(startLat); m > 250*time.Millisecond {
		t.Errorf("median start → spec %s, want under 250ms", m)
	}
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func TestEnginePauseUnpause(t *testing.T) {
	e := newTestEnv(t)
	net := e.network("app")
	proxy := e.run("proxy", runOpts{nets: []string{net}})
	id := e.run("r", runOpts{nets: []string{net}, labels: map[string]string{e.label("service"): "app"}})
	sink := newFakeSink()
	e.provider(Config{ContainerID: proxy}, []ServiceSelector{{Name: "app"}}, sink, nil)
	drain := func() string {
		s := sink.get("app")
		if len(s) != 1 {
			return "missing"
		}
		return s[0].Drain
	}
	if d := drain(); d != "" {
		t.Fatalf("drain = %q before pause", d)
	}
	if _, err := e.cli.ContainerPause(t.Context(), id, client.ContainerPauseOptions{}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, time.Second, "paused", func() bool { return drain() == "container paused" })
	if _, err := e.cli.ContainerUnpause(t.Context(), id, client.ContainerUnpauseOptions{}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, time.Second, "unpaused", func() bool { return drain() == "" })
}

func TestEngineDockerHealth(t *testing.T) {
	e := newTestEnv(t)
	net := e.network("app")
	proxy := e.run("proxy", runOpts{nets: []string{net}})
	hc := &container.HealthConfig{Test: []string{"CMD", "/whoami", "--probe", "127.0.0.1:8080"}, Interval: 200 * time.Millisecond, Timeout: time.Second, Retries: 1}
	labels := map[string]string{e.label("service"): "app"}
	good := e.run("good", runOpts{nets: []string{net}, labels: labels, health: hc})
	bad := e.run("bad", runOpts{nets: []string{net}, labels: labels, health: hc, args: []string{"--listen", ":8080", "--unhealthy"}})
	sink := newFakeSink()
	p := e.provider(Config{ContainerID: proxy}, []ServiceSelector{{Name: "app", DockerHealth: true}}, sink, nil)
	testkit.Eventually(t, 10*time.Second, "healthy replica routed", func() bool {
		s := sink.get("app")
		return len(s) == 1 && s[0].Container == good
	})
	testkit.Eventually(t, 10*time.Second, "unhealthy replica explained", func() bool {
		for _, x := range p.Explain() {
			if x.Container == bad && !x.Routed && strings.Contains(x.Reason, "docker health is unhealthy") {
				return true
			}
		}
		return false
	})
	if s := sink.get("app"); len(s) != 1 || s[0].Container != good {
		t.Fatalf("specs = %+v: the unhealthy replica must never be routed", s)
	}
	if st, err := p.ContainerHealth(t.Context(), bad); err != nil || st != "unhealthy" {
		t.Fatalf("ContainerHealth(bad) = %q, %v", st, err)
	}
}
