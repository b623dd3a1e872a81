package docker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/tierlb/tierlb/backends"
)

// TestPublishAgreesWithBuildView: after every batch of random events, what
// the incremental publish handed the sink and what Explain says are exactly
// what buildView makes of all the records at once.
func TestPublishAgreesWithBuildView(t *testing.T) {
	f := newFakeClient()
	f.set(proxyCtr(map[string]string{"app": "10.2.0.100", "web": "10.1.0.100"}).inspect())
	sels := []ServiceSelector{{Name: "app"}, {Name: "web", Selector: map[string]string{"tier": "web"}}, {Name: "none"}}
	sink := newFakeSink()
	p, err := New(Config{ContainerID: "proxyid", LabelServices: true}, sels, sink, Options{Client: f})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 19))
	labelSets := []map[string]string{
		{"tierlb.service": "app", "tierlb.port": "8080"},
		{"tierlb.service": "app", "tierlb.port": "8080", "tier": "web"},
		{"tierlb.service": "app"}, // no port: explained, not routed
		{"tierlb.service": "decl", "tierlb.listen": "127.0.0.1:9000", "tierlb.port": "80"},
		{"tierlb.service": "decl", "tierlb.listen": "127.0.0.1:9001", "tierlb.port": "80"}, // disagrees
		{"tierlb.service": "app", "tierlb.port": "8080", "tierlb.enable": "false"},
		{"tierlb.service": "app", "tierlb.port": "8080", "tierlb.network": "web"},
	}
	netSets := []map[string]string{{"app": "10.2.0.%d"}, {"web": "10.1.0.%d"}, {"other": "10.9.0.%d"}, {"app": "10.2.0.%d", "web": "10.1.0.%d"}}
	run := func(i int) fakeCtr {
		nets := map[string]string{}
		for k, v := range netSets[rng.IntN(len(netSets))] {
			nets[k] = fmt.Sprintf(v, i%250+1)
		}
		return fakeCtr{id: fmt.Sprintf("id%03d", i), name: fmt.Sprintf("c-%03d", i), created: t0.Add(-rngDur(rng)),
			labels: labelSets[rng.IntN(len(labelSets))], nets: nets}
	}
	for i := range 30 {
		f.set(run(i).inspect())
	}
	if err := p.relist(ctx); err != nil {
		t.Fatal(err)
	}
	check(t, p, sink, sels, "after the relist")

	next := 30
	for round := range 200 {
		var batch []string
		var msgs []events.Message // odd rounds apply their events as one batch
		for range 1 + rng.IntN(6) {
			ids := slices.Sorted(maps.Keys(f.ctrs))
			id := ids[rng.IntN(len(ids))]
			if id == "proxyid" {
				continue
			}
			labels := f.ctrs[id].Config.Labels
			var action string
			switch rng.IntN(7) {
			case 0:
				c := run(next)
				next++
				f.set(c.inspect())
				id, labels, action = c.id, c.labels, "start"
			case 1:
				action = "kill"
			case 2:
				f.remove(id)
				action = "die"
			case 3:
				action = "pause"
			case 4:
				action = "unpause"
			case 5:
				action = "health_status: healthy"
			default:
				action = "start"
			}
			m := ctrEvent(action, id, labels)
			if action == "kill" {
				m.Actor.Attributes["signal"] = "15"
			}
			batch = append(batch, action+" "+id)
			if round%2 == 1 {
				msgs = append(msgs, m)
				continue
			}
			if err := p.applyEvents(ctx, []events.Message{m}); err != nil {
				t.Fatal(err)
			}
		}
		if len(msgs) > 0 {
			if err := p.applyEvents(ctx, msgs); err != nil {
				t.Fatal(err)
			}
		}
		check(t, p, sink, sels, fmt.Sprintf("round %d (%v)", round, batch))
		if t.Failed() {
			return
		}
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.early) > 0 {
		t.Errorf("services declared before their backends were handed over: %v", sink.early)
	}
	if sink.decls == nil {
		t.Error("no service was ever declared: the test does not cover declarations")
	}
}

func rngDur(r *rand.Rand) time.Duration { return time.Duration(r.IntN(1000)) * time.Millisecond }

// check compares the sink and Explain with buildView over every record.
func check(t *testing.T, p *Provider, sink *fakeSink, sels []ServiceSelector, when string) {
	t.Helper()
	all := slices.Collect(maps.Values(p.ctrs))
	r := reach{me: p.me, prefix: p.cfg.labelPrefix(), restrict: p.cfg.Networks, bridges: p.bridges}
	v := buildView(p.cfg, sels, r, all)
	for name, want := range v.specs {
		if got := sink.get(name); !reflect.DeepEqual(slices.Clip(got), slices.Clip(want)) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("%s: service %s got %v, want %v", when, name, got, want)
		}
	}
	if got := p.Explain(); !reflect.DeepEqual(got, v.explain) {
		t.Errorf("%s: Explain differs from buildView:\n got %v\nwant %v", when, got, v.explain)
	}
	sink.mu.Lock()
	decls := sink.decls
	sink.mu.Unlock()
	if !slices.EqualFunc(decls, v.decls, equalDecl) {
		t.Errorf("%s: declarations %v, want %v", when, decls, v.decls)
	}
}

// nopSink takes the specs and keeps nothing: the benchmark counts the
// provider's work, not a sink's.
type nopSink struct{}

func (nopSink) UpdateBackends(string, []backends.Spec) {}
func (nopSink) DeclareServices([]LabelService)         {}

// BenchmarkPublishOneChange publishes one container's change (a stop
// begun, then over) among 10,000 containers of 100
// configured services, as each event of the scale harness's storm does.
func BenchmarkPublishOneChange(b *testing.B) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		b.Run(level.String(), func(b *testing.B) {
			f := newFakeClient()
			f.set(proxyCtr(map[string]string{"app": "10.2.0.100"}).inspect())
			for i := range 10000 {
				svc := fmt.Sprintf("svc%02d", i%100)
				f.set(fakeCtr{id: fmt.Sprintf("id%05d", i), name: fmt.Sprintf("%s-%d", svc, i/100), created: t0,
					labels: map[string]string{"tierlb.service": svc, "tierlb.port": "8080"},
					nets:   map[string]string{"app": fmt.Sprintf("10.2.%d.%d", i/250, i%250+1)}}.inspect())
			}
			var sels []ServiceSelector
			for i := range 100 {
				sels = append(sels, ServiceSelector{Name: fmt.Sprintf("svc%02d", i)})
			}
			log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: level}))
			p, err := New(Config{ContainerID: "proxyid"}, sels, nopSink{}, Options{Client: f, Logger: log})
			if err != nil {
				b.Fatal(err)
			}
			if err := p.relist(b.Context()); err != nil {
				b.Fatal(err)
			}
			if len(p.published) != 100 {
				b.Fatalf("%d services published, want 100", len(p.published))
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				id := fmt.Sprintf("id%05d", i%10000)
				c := p.ctrs[id]
				c.Stopping = !c.Stopping
				p.publishChanged(map[string]bool{id: true})
				i += 37
			}
		})
	}
}
