package docker

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/network"

	"github.com/tierlb/tierlb/backends"
	"github.com/tierlb/tierlb/internal/testkit"
)

var appLabels = map[string]string{"tierlb.service": "app", "tierlb.port": "8080"}

func proxyCtr(nets map[string]string) fakeCtr {
	return fakeCtr{id: "proxyid", name: "tierlb", created: t0, nets: nets}
}

func appCtr(n string, nets map[string]string) fakeCtr {
	return fakeCtr{id: "id" + n, name: "app-" + n, created: t0, labels: appLabels, nets: nets}
}

func ctrEvent(action, id string, attrs map[string]string) events.Message {
	a := map[string]string{"tierlb.service": "app", "tierlb.port": "8080"}
	for k, v := range attrs {
		a[k] = v
	}
	return events.Message{Type: events.ContainerEventType, Action: events.Action(action), Actor: events.Actor{ID: id, Attributes: a}}
}

func addresses(specs []string) string { return strings.Join(specs, ",") }

func specSummary(s *fakeSink) string {
	var out []string
	for _, sp := range s.get("app") {
		e := sp.ID + "=" + sp.Address
		if sp.Drain != "" {
			e += "(" + sp.Drain + ")"
		}
		out = append(out, e)
	}
	return addresses(out)
}

func setup(t *testing.T) (*fakeClient, *fakeSink, *Provider) {
	f := newFakeClient()
	f.set(proxyCtr(map[string]string{"app": "10.2.0.100"}).inspect())
	f.set(appCtr("1", map[string]string{"app": "10.2.0.1", "web": "10.1.0.1"}).inspect())
	sink := newFakeSink()
	p := startProvider(t, Config{ContainerID: "proxyid"}, []ServiceSelector{{Name: "app"}}, f, sink)
	testkit.Eventually(t, 2*time.Second, "first sync", func() bool { ok, _ := p.Ready(); return ok })
	if got := specSummary(sink); got != "app-1=10.2.0.1:8080" {
		t.Fatalf("after first sync: %s", got)
	}
	return f, sink, p
}

func TestProviderLifecycle(t *testing.T) {
	f, sink, p := setup(t)

	// start: one inspect, no relist.
	lists, inspects, _ := f.counts()
	f.set(appCtr("2", map[string]string{"app": "10.2.0.2"}).inspect())
	f.send(t, ctrEvent("start", "id2", map[string]string{"name": "app-2"}))
	testkit.Eventually(t, time.Second, "app-2 added", func() bool { return specSummary(sink) == "app-1=10.2.0.1:8080,app-2=10.2.0.2:8080" })
	if l, i, _ := f.counts(); l != lists || i != inspects+1 {
		t.Fatalf("start cost %d lists and %d inspects, want 0 and 1", l-lists, i-inspects)
	}

	// kill with SIGTERM: drained at once, without asking the engine.
	_, inspects, _ = f.counts()
	f.send(t, ctrEvent("kill", "id2", map[string]string{"signal": "15"}))
	testkit.Eventually(t, time.Second, "app-2 draining", func() bool {
		return specSummary(sink) == "app-1=10.2.0.1:8080,app-2=10.2.0.2:8080(container stopping)"
	})
	if _, i, _ := f.counts(); i != inspects {
		t.Fatalf("kill cost %d inspects, want 0", i-inspects)
	}
	// a resync while it is still stopping keeps the drain.
	p.SetServices([]ServiceSelector{{Name: "app"}})
	testkit.Eventually(t, time.Second, "relist", func() bool { l, _, _ := f.counts(); return l > lists })
	f.send(t, ctrEvent("kill", "id1", map[string]string{"signal": "1"})) // SIGHUP: a reload, not a stop
	f.send(t, ctrEvent("pause", "id1", nil))
	testkit.Eventually(t, time.Second, "app-1 paused, app-2 still draining", func() bool {
		return specSummary(sink) == "app-1=10.2.0.1:8080(container paused),app-2=10.2.0.2:8080(container stopping)"
	})

	// die removes; unpause restores.
	f.remove("id2")
	f.send(t, ctrEvent("die", "id2", nil))
	f.send(t, ctrEvent("unpause", "id1", nil))
	testkit.Eventually(t, time.Second, "app-2 gone, app-1 back", func() bool { return specSummary(sink) == "app-1=10.2.0.1:8080" })

	ex := p.Explain()
	if len(ex) != 1 || ex[0].Name != "app-1" || !ex[0].Routed || ex[0].Network != "app" {
		t.Fatalf("explain = %+v", ex)
	}
}

func TestProviderHealthEvents(t *testing.T) {
	f := newFakeClient()
	f.set(proxyCtr(map[string]string{"app": "10.2.0.100"}).inspect())
	c := appCtr("1", map[string]string{"app": "10.2.0.1"})
	c.health = "starting"
	f.set(c.inspect())
	sink := newFakeSink()
	p := startProvider(t, Config{ContainerID: "proxyid"}, []ServiceSelector{{Name: "app", DockerHealth: true}}, f, sink)
	testkit.Eventually(t, 2*time.Second, "first sync", func() bool { ok, _ := p.Ready(); return ok })
	if got := specSummary(sink); got != "" {
		t.Fatalf("starting container routed: %s", got)
	}
	if st, err := p.ContainerHealth(t.Context(), "id1"); err != nil || st != "starting" {
		t.Fatalf("ContainerHealth = %q, %v", st, err)
	}
	_, inspects, _ := f.counts()
	f.send(t, ctrEvent("health_status: healthy", "id1", nil))
	testkit.Eventually(t, time.Second, "healthy routed", func() bool { return specSummary(sink) == "app-1=10.2.0.1:8080" })
	f.send(t, ctrEvent("health_status: unhealthy", "id1", nil))
	testkit.Eventually(t, time.Second, "unhealthy excluded", func() bool { return specSummary(sink) == "" })
	if _, i, _ := f.counts(); i != inspects {
		t.Fatalf("health events cost %d inspects, want 0", i-inspects)
	}
	if st, _ := p.ContainerHealth(t.Context(), "id1"); st != "unhealthy" {
		t.Fatalf("ContainerHealth = %q after the event", st)
	}
	if ex := p.Explain(); len(ex) != 1 || ex[0].Routed || !strings.Contains(ex[0].Reason, "docker health is unhealthy") {
		t.Fatalf("explain = %+v", ex)
	}
}

func TestProviderCoalescesBursts(t *testing.T) {
	f, sink, p := setup(t)
	p.coalesce = 50 * time.Millisecond // set before the burst; Run reads it per batch
	before := sink.updateCount()
	for i := range 20 {
		n := string(rune('a' + i))
		f.set(appCtr(n, map[string]string{"app": "10.2.0." + strconv.Itoa(10+i)}).inspect())
	}
	for i := range 20 {
		n := string(rune('a' + i))
		f.send(t, ctrEvent("start", "id"+n, nil))
	}
	testkit.Eventually(t, 2*time.Second, "21 replicas", func() bool { return len(sink.get("app")) == 21 })
	if n := sink.updateCount() - before; n > 3 {
		t.Fatalf("20 starts made %d updates, want them coalesced", n)
	}
}

func TestProviderStreamCutResyncs(t *testing.T) {
	f, sink, p := setup(t)
	_, _, subs := f.counts()
	// The stream breaks; while the provider is away a replica starts.
	f.mu.Lock()
	f.down = errors.New("connection refused")
	f.mu.Unlock()
	f.cut(io.ErrUnexpectedEOF)
	f.set(appCtr("2", map[string]string{"app": "10.2.0.2"}).inspect())
	testkit.Eventually(t, time.Second, "a failed resubscribe", func() bool { _, _, s := f.counts(); return s > subs+1 })
	if ok, _ := p.Ready(); !ok {
		t.Fatal("ready must stay true once synced")
	}
	if got := specSummary(sink); got != "app-1=10.2.0.1:8080" {
		t.Fatalf("last known backends not kept: %s", got)
	}
	f.mu.Lock()
	f.down = nil
	f.mu.Unlock()
	testkit.Eventually(t, 2*time.Second, "resync picks up app-2", func() bool { return specSummary(sink) == "app-1=10.2.0.1:8080,app-2=10.2.0.2:8080" })
}

func TestProviderEngineDownAtStart(t *testing.T) {
	f := newFakeClient()
	f.down = errors.New("dial unix /fake.sock: connect: no such file or directory")
	f.set(appCtr("1", map[string]string{"bridge": "172.17.0.2"}).inspect())
	f.bridges = []network.Summary{{Network: network.Network{Name: "bridge", ID: "id-bridge", Driver: "bridge"}}}
	sink := newFakeSink()
	p := startProvider(t, Config{}, []ServiceSelector{{Name: "app"}}, f, sink)
	testkit.Eventually(t, time.Second, "a reason", func() bool { _, why := p.Ready(); return strings.Contains(why, "no such file") })
	if ok, why := p.Ready(); ok || !strings.Contains(why, "unix:///fake.sock") {
		t.Fatalf("Ready = %v, %q", ok, why)
	}
	f.mu.Lock()
	f.down = nil
	f.mu.Unlock()
	testkit.Eventually(t, 2*time.Second, "ready", func() bool { ok, _ := p.Ready(); return ok })
	// On the host (no own container found) any bridge network is reachable.
	if got := specSummary(sink); got != "app-1=172.17.0.2:8080" {
		t.Fatalf("specs = %s", got)
	}
}

func TestProviderOwnNetworksFollowConnect(t *testing.T) {
	f, sink, p := setup(t)
	f.set(appCtr("2", map[string]string{"web": "10.1.0.2"}).inspect())
	f.send(t, ctrEvent("start", "id2", nil))
	testkit.Eventually(t, time.Second, "app-2 explained", func() bool {
		for _, e := range p.Explain() {
			if e.Name == "app-2" && !e.Routed && strings.Contains(e.Reason, "no network shared with the proxy") {
				return true
			}
		}
		return false
	})
	// The proxy joins web: app-2 becomes reachable, app-1 stays on app (first by name).
	f.set(proxyCtr(map[string]string{"app": "10.2.0.100", "web": "10.1.0.100"}).inspect())
	f.send(t, events.Message{Type: events.NetworkEventType, Action: "connect",
		Actor: events.Actor{ID: "id-web", Attributes: map[string]string{"container": "proxyid", "name": "web", "type": "bridge"}}})
	testkit.Eventually(t, time.Second, "app-2 routed on web", func() bool { return specSummary(sink) == "app-1=10.2.0.1:8080,app-2=10.1.0.2:8080" })
	// A replica disconnected from web: re-inspected, not routed.
	f.set(appCtr("2", map[string]string{}).inspect())
	f.send(t, events.Message{Type: events.NetworkEventType, Action: "disconnect",
		Actor: events.Actor{ID: "id-web", Attributes: map[string]string{"container": "id2", "name": "web", "type": "bridge"}}})
	testkit.Eventually(t, time.Second, "app-2 out", func() bool { return specSummary(sink) == "app-1=10.2.0.1:8080" })
}

func TestProviderIgnoresOthers(t *testing.T) {
	f, _, _ := setup(t)
	_, inspects, _ := f.counts()
	other := events.Message{Type: events.ContainerEventType, Action: "start", Actor: events.Actor{ID: "x", Attributes: map[string]string{"name": "postgres"}}}
	f.send(t, other)
	f.send(t, events.Message{Type: events.NetworkEventType, Action: "connect", Actor: events.Actor{ID: "n", Attributes: map[string]string{"container": "x"}}})
	f.send(t, ctrEvent("rename", "id1", nil)) // ours: re-read
	testkit.Eventually(t, time.Second, "rename inspected", func() bool { _, i, _ := f.counts(); return i == inspects+1 })
}

func TestExplicitContainerIDMissing(t *testing.T) {
	f := newFakeClient()
	sink := newFakeSink()
	p := startProvider(t, Config{ContainerID: "nope"}, nil, f, sink)
	testkit.Eventually(t, time.Second, "a reason", func() bool {
		_, why := p.Ready()
		return strings.Contains(why, "own container nope (from docker.container_id)")
	})
}

// TestProviderStopSkipsCoalescing: a burst may wait to be applied as one
// update, but not an event that takes a replica out of rotation.
func TestProviderStopSkipsCoalescing(t *testing.T) {
	f, sink, p := setup(t)
	p.coalesce = 3 * time.Second // set before the event; Run reads it per batch
	start := time.Now()
	f.send(t, ctrEvent("kill", "id1", map[string]string{"signal": "15"}))
	testkit.Eventually(t, 2*time.Second, "app-1 draining", func() bool {
		return specSummary(sink) == "app-1=10.2.0.1:8080(container stopping)"
	})
	if d := time.Since(start); d >= time.Second {
		t.Fatalf("the stop waited %s, as long as a coalescing burst", d)
	}
}

// TestLogDrains: drains and returns are logged once each, at info level
// as at debug level (where logChanges indexes every old replica, not only
// the drained ones).
func TestLogDrains(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		t.Run(level.String(), func(t *testing.T) { testLogDrains(t, level) })
	}
}

func testLogDrains(t *testing.T, level slog.Level) {
	var buf bytes.Buffer
	p := &Provider{synced: true, log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))}
	up := func(id string) backends.Spec { return backends.Spec{ID: id, Address: id + ":80"} }
	drained := func(id, why string) backends.Spec { s := up(id); s.Drain = why; return s }
	steps := []struct {
		name      string
		old, next []backends.Spec
		want      string
	}{
		{"a replica stops", []backends.Spec{up("a"), up("b")}, []backends.Spec{up("a"), drained("b", "container stopping")},
			`level=INFO msg="backend draining" service=app backend=b reason="container stopping"` + "\n"},
		{"still draining: said once", []backends.Spec{up("a"), drained("b", "container stopping")}, []backends.Spec{up("a"), drained("b", "container stopping")}, ""},
		{"unpaused", []backends.Spec{drained("a", "container paused")}, []backends.Spec{up("a")},
			`level=INFO msg="backend back in rotation" service=app backend=a was="container paused"` + "\n"},
		{"a new replica that is already stopping", nil, []backends.Spec{drained("c", "container stopping")},
			`level=INFO msg="backend draining" service=app backend=c reason="container stopping"` + "\n"},
		{"a new replica in rotation", nil, []backends.Spec{up("d")}, ""},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			buf.Reset()
			p.logChanges("app", st.old, st.next)
			var got string
			for line := range strings.Lines(buf.String()) {
				if !strings.HasPrefix(line, "level=DEBUG") {
					got += line
				}
			}
			if got != st.want {
				t.Errorf("logged %q, want %q", got, st.want)
			}
		})
	}
}

// TestProviderResubscribesSinceLastEvent: after a break the provider asks
// the engine for the events since the last one it saw, so a stop that
// happened meanwhile still drains its replica.
func TestProviderResubscribesSinceLastEvent(t *testing.T) {
	f, _, _ := setup(t)
	_, _, subs := f.counts()
	ev := ctrEvent("start", "id1", nil)
	ev.TimeNano = time.Date(2026, 12, 3, 10, 0, 0, 123, time.UTC).UnixNano()
	f.send(t, ev)
	f.cut(io.ErrUnexpectedEOF)
	testkit.Eventually(t, 2*time.Second, "a new subscription", func() bool { _, _, s := f.counts(); return s > subs })
	f.mu.Lock()
	sinces := slices.Clone(f.sinces)
	f.mu.Unlock()
	want := fmt.Sprintf("%d.000000123", ev.TimeNano/1e9)
	if sinces[0] != "" || sinces[len(sinces)-1] != want {
		t.Fatalf("subscriptions asked since %q, want the first from now and the next since %s", sinces, want)
	}
}

// TestLogChangesAtDebug: at debug level, after the first sync, every
// backend added and removed is logged once, after the sink has it: what
// the scale harness times each event's change by.
func TestLogChangesAtDebug(t *testing.T) {
	var buf bytes.Buffer
	p := &Provider{synced: true, log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))}
	a, b := backends.Spec{ID: "a", Address: "a:80"}, backends.Spec{ID: "b", Address: "b:80"}
	p.logChanges("app", []backends.Spec{a}, []backends.Spec{b})
	want := `level=DEBUG msg="backend added" service=app backend=b address=b:80` + "\n" +
		`level=DEBUG msg="backend removed" service=app backend=a` + "\n"
	if got := buf.String(); got != want {
		t.Fatalf("logged %q, want %q", got, want)
	}
	buf.Reset()
	p.synced = false // the first sync says how many, not each one
	p.logChanges("app", nil, []backends.Spec{a, b})
	if got := buf.String(); got != "" {
		t.Fatalf("first sync logged %q", got)
	}
}
