package docker

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/swarm"

	"github.com/tierlb/tierlb/internal/testkit"
)

// swarmSummary lists a service's backends as NAME@NODE=ADDR(drain).
func swarmSummary(s *fakeSink, service string) string {
	var out []string
	for _, sp := range s.get(service) {
		e := fmt.Sprintf("%s@%s=%s", sp.ID, sp.Node, sp.Address)
		if sp.Drain != "" {
			e += "(" + sp.Drain + ")"
		}
		out = append(out, e)
	}
	return strings.Join(out, ",")
}

// swarmSetup is a manager with three nodes, the proxy on overlay "front",
// and service web (labels on the service) with a task on node-1 and node-2.
func swarmSetup(t *testing.T, cfg Config) (*fakeClient, *fakeSink, *Provider) {
	t.Helper()
	return countedSwarmSetup(t, cfg, nil)
}

// countedSwarmSetup is swarmSetup with the provider's metrics.
func countedSwarmSetup(t *testing.T, cfg Config, m *Metrics) (*fakeClient, *fakeSink, *Provider) {
	t.Helper()
	f := newFakeClient().withSwarm()
	cfg.ContainerID = f.proxyOn(map[string]string{"front": "10.9.0.100"})
	f.editSwarm(func(s *fakeSwarm) {
		for i := 1; i <= 3; i++ {
			id := fmt.Sprintf("n%d", i)
			s.nodes[id] = fakeNode(id, fmt.Sprintf("node-%d", i))
		}
		s.services["sweb"] = fakeService("sweb", "shop_web",
			map[string]string{"tierlb.service": "web", "tierlb.port": "8080"}, nil)
		for i, node := range []string{"n1", "n2"} {
			id := fmt.Sprintf("t%d", i+1)
			s.tasks[id] = fakeTask{id: id, service: "sweb", node: node, slot: i + 1,
				nets: map[string]string{"front": fmt.Sprintf("10.9.0.%d", i+1)}, created: t0}.task()
		}
	})
	sink := newFakeSink()
	p := startCountedProvider(t, cfg, []ServiceSelector{{Name: "web"}}, f, sink, m)
	testkit.Eventually(t, 2*time.Second, "first sync", func() bool { ok, _ := p.Ready(); return ok })
	return f, sink, p
}

func TestSwarmTasksAcrossNodes(t *testing.T) {
	f, sink, p := swarmSetup(t, Config{SwarmPoll: time.Hour})
	want := "shop_web.1.t1@node-1=10.9.0.1:8080,shop_web.2.t2@node-2=10.9.0.2:8080"
	if got := swarmSummary(sink, "web"); got != want {
		t.Fatalf("backends = %s, want %s", got, want)
	}
	specs := sink.get("web")
	if specs[0].Container != "c-t1" || specs[0].Slot != 1 || specs[0].Network != "front" {
		t.Errorf("spec = %+v, want container c-t1, slot 1, network front", specs[0])
	}
	ex := p.Explain()
	if len(ex) != 2 || ex[0].Task != "t1" || ex[0].Node != "node-1" || ex[0].Slot != 1 || !ex[0].Routed {
		t.Errorf("explain = %+v", ex)
	}
	if got := f.lastTaskFilters(); !got["desired-state"]["running"] || !got["service"]["sweb"] || len(got["service"]) != 1 {
		t.Errorf("task list filters = %v, want desired-state=running and service=sweb only", got)
	}
	for _, typ := range []events.Type{events.ServiceEventType, events.NodeEventType, events.ContainerEventType} {
		if f.lastFilters["type"][string(typ)] != true {
			t.Errorf("event filter %v lacks type %s", f.lastFilters, typ)
		}
	}
}

func TestSwarmLabelsAndAddressChoice(t *testing.T) {
	tests := []struct {
		name      string
		svcLabels map[string]string
		ctrLabels map[string]string
		nets      map[string]string
		want      string // summary of service "web"
		why       string // part of explain's reason when want is ""
	}{
		{name: "service labels win over container labels",
			svcLabels: map[string]string{"tierlb.service": "web", "tierlb.port": "8080"},
			ctrLabels: map[string]string{"tierlb.service": "other", "tierlb.port": "9090", "tierlb.weight": "3"},
			nets:      map[string]string{"front": "10.9.0.7"},
			want:      "api.1.t7@node-1=10.9.0.7:8080"},
		{name: "container labels alone",
			ctrLabels: map[string]string{"tierlb.service": "web", "tierlb.port": "9090"},
			nets:      map[string]string{"front": "10.9.0.7"},
			want:      "api.1.t7@node-1=10.9.0.7:9090"},
		{name: "first shared overlay by name",
			svcLabels: map[string]string{"tierlb.service": "web", "tierlb.port": "8080"},
			nets:      map[string]string{"back": "10.8.0.7", "front": "10.9.0.7", "zeta": "10.7.0.7"},
			want:      "api.1.t7@node-1=10.9.0.7:8080"},
		{name: "overlay the proxy does not share, explained",
			svcLabels: map[string]string{"tierlb.service": "web", "tierlb.port": "8080"},
			nets:      map[string]string{"back": "10.8.0.7"},
			why:       "no network shared with the proxy: the container is on back; the proxy is not on network back (proxy networks: front)"},
		{name: "tierlb.network names an overlay the proxy is not on",
			svcLabels: map[string]string{"tierlb.service": "web", "tierlb.port": "8080", "tierlb.network": "back"},
			nets:      map[string]string{"back": "10.8.0.7", "front": "10.9.0.7"},
			why:       "the proxy is not on network back"},
		{name: "no port",
			svcLabels: map[string]string{"tierlb.service": "web"},
			nets:      map[string]string{"front": "10.9.0.7"},
			why:       "no port"},
		{name: "opt out",
			svcLabels: map[string]string{"tierlb.service": "web", "tierlb.port": "8080", "tierlb.enable": "false"},
			nets:      map[string]string{"front": "10.9.0.7"},
			why:       "tierlb.enable=false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeClient().withSwarm()
			id := f.proxyOn(map[string]string{"front": "10.9.0.100"})
			f.editSwarm(func(s *fakeSwarm) {
				s.nodes["n1"] = fakeNode("n1", "node-1")
				s.services["s7"] = fakeService("s7", "api", tt.svcLabels, tt.ctrLabels)
				s.tasks["t7"] = fakeTask{id: "t7", service: "s7", node: "n1", slot: 1, nets: tt.nets, created: t0}.task()
			})
			sink := newFakeSink()
			p := startProvider(t, Config{ContainerID: id, SwarmPoll: time.Hour}, []ServiceSelector{{Name: "web"}}, f, sink)
			testkit.Eventually(t, 2*time.Second, "first sync", func() bool { ok, _ := p.Ready(); return ok })
			if got := swarmSummary(sink, "web"); got != tt.want {
				t.Fatalf("backends = %q, want %q", got, tt.want)
			}
			if tt.why == "" {
				return
			}
			ex := p.Explain()
			if len(ex) != 1 || ex[0].Routed || !strings.Contains(ex[0].Reason, tt.why) || ex[0].Task != "t7" {
				t.Fatalf("explain = %+v, want one unrouted task t7 whose reason has %q", ex, tt.why)
			}
		})
	}
}

func TestSwarmSelectorMatchesStackNamespace(t *testing.T) {
	f := newFakeClient().withSwarm()
	id := f.proxyOn(map[string]string{"front": "10.9.0.100"})
	f.editSwarm(func(s *fakeSwarm) {
		s.nodes["n1"] = fakeNode("n1", "node-1")
		s.services["s1"] = fakeService("s1", "shop_app", map[string]string{"tierlb.enable": "true"},
			map[string]string{"com.docker.stack.namespace": "shop"})
		s.services["s2"] = fakeService("s2", "blog_app", map[string]string{"tierlb.enable": "true"},
			map[string]string{"com.docker.stack.namespace": "blog"})
		s.tasks["t1"] = fakeTask{id: "t1", service: "s1", node: "n1", slot: 1, nets: map[string]string{"front": "10.9.0.1"}}.task()
		s.tasks["t2"] = fakeTask{id: "t2", service: "s2", node: "n1", slot: 1, nets: map[string]string{"front": "10.9.0.2"}}.task()
	})
	sink := newFakeSink()
	sel := []ServiceSelector{{Name: "app", Port: 8080, Selector: map[string]string{"com.docker.stack.namespace": "shop"}}}
	startProvider(t, Config{ContainerID: id, SwarmPoll: time.Hour}, sel, f, sink)
	testkit.Eventually(t, 2*time.Second, "shop's task", func() bool { return swarmSummary(sink, "app") == "shop_app.1.t1@node-1=10.9.0.1:8080" })
}

func TestSwarmTaskLifecycle(t *testing.T) {
	f, sink, _ := swarmSetup(t, Config{SwarmPoll: 5 * time.Millisecond})
	setTask := func(id string, edit func(*swarm.Task)) {
		f.editSwarm(func(s *fakeSwarm) { tk := s.tasks[id]; edit(&tk); s.tasks[id] = tk })
	}
	await := func(what, want string) {
		t.Helper()
		testkit.Eventually(t, 5*time.Second, what, func() bool { return swarmSummary(sink, "web") == want })
	}
	t1 := "shop_web.1.t1@node-1=10.9.0.1:8080"
	t2 := "shop_web.2.t2@node-2=10.9.0.2:8080"

	// A new task is routed only once running.
	f.editSwarm(func(s *fakeSwarm) {
		tk := fakeTask{id: "t3", service: "sweb", node: "n3", slot: 3, nets: map[string]string{"front": "10.9.0.3"}, created: t0}.task()
		tk.Status.State = swarm.TaskStateStarting
		s.tasks["t3"] = tk
	})
	await("a starting task to stay out", t1+","+t2)
	setTask("t3", func(tk *swarm.Task) { tk.Status.State = swarm.TaskStateRunning })
	t3 := "shop_web.3.t3@node-3=10.9.0.3:8080"
	await("a running task to join", t1+","+t2+","+t3)

	// Desired state leaves running: drained while the container still runs.
	setTask("t3", func(tk *swarm.Task) { tk.DesiredState = swarm.TaskStateShutdown })
	await("t3 to drain", t1+","+t2+","+t3+"(task desired state is shutdown)")
	setTask("t3", func(tk *swarm.Task) { tk.Status.State = swarm.TaskStateShutdown })
	await("t3 to go", t1+","+t2)

	// A node drained, then a node down.
	f.editSwarm(func(s *fakeSwarm) {
		n := s.nodes["n2"]
		n.Spec.Availability = swarm.NodeAvailabilityDrain
		s.nodes["n2"] = n
	})
	f.send(t, events.Message{Type: events.NodeEventType, Action: "update", Actor: events.Actor{ID: "n2"}})
	await("node-2's task to drain", t1+","+t2+"(node node-2 is drained)")
	f.editSwarm(func(s *fakeSwarm) {
		n := s.nodes["n1"]
		n.Status.State = swarm.NodeStateDown
		s.nodes["n1"] = n
	})
	f.send(t, events.Message{Type: events.NodeEventType, Action: "update", Actor: events.Actor{ID: "n1"}})
	await("node-1's task to drain", t1+"(node node-1 is down),"+t2+"(node node-2 is drained)")

	// A task removed from the manager altogether.
	f.editSwarm(func(s *fakeSwarm) { delete(s.tasks, "t1") })
	await("t1 to go", t2+"(node node-2 is drained)")
}

// With a poll far away, only events can explain a change seen at once.
func TestSwarmEventsRelistAtOnce(t *testing.T) {
	f, sink, _ := swarmSetup(t, Config{SwarmPoll: time.Hour})
	t1 := "shop_web.1.t1@node-1=10.9.0.1:8080"
	t2 := "shop_web.2.t2@node-2=10.9.0.2:8080"
	t3 := "shop_web.3.t3@node-3=10.9.0.3:8080"
	addT3 := func(s *fakeSwarm) {
		s.tasks["t3"] = fakeTask{id: "t3", service: "sweb", node: "n3", slot: 3, nets: map[string]string{"front": "10.9.0.3"}, created: t0}.task()
	}

	// Scale up: the event triggers a relist; tasks that appear after it
	// are found by the hot service's fast polling.
	f.send(t, events.Message{Type: events.ServiceEventType, Action: "update",
		Actor: events.Actor{ID: "sweb", Attributes: map[string]string{"name": "shop_web", "replicas.new": "3"}}})
	f.editSwarm(addT3)
	testkit.Eventually(t, 2*time.Second, "t3 after the service event", func() bool { return swarmSummary(sink, "web") == t1+","+t2+","+t3 })

	// A rolling update keeps the service hot until it completes.
	f.send(t, events.Message{Type: events.ServiceEventType, Action: "update",
		Actor: events.Actor{ID: "sweb", Attributes: map[string]string{"name": "shop_web", "updatestate.new": "updating"}}})
	f.editSwarm(func(s *fakeSwarm) { tk := s.tasks["t2"]; tk.DesiredState = swarm.TaskStateShutdown; s.tasks["t2"] = tk })
	testkit.Eventually(t, 2*time.Second, "t2 to drain during the update", func() bool {
		return swarmSummary(sink, "web") == t1+","+t2+"(task desired state is shutdown),"+t3
	})

	// A local task container being stopped drains the task before the
	// manager says anything.
	f.send(t, events.Message{Type: events.ContainerEventType, Action: "kill", Actor: events.Actor{ID: "c-t1",
		Attributes: map[string]string{"signal": "15", taskIDLabel: "t1", serviceIDLabel: "sweb"}}})
	testkit.Eventually(t, 2*time.Second, "t1 to drain on kill", func() bool {
		return strings.HasPrefix(swarmSummary(sink, "web"), t1+"(container stopping)")
	})

	// A service created with tierlb labels is found on its create event.
	f.editSwarm(func(s *fakeSwarm) {
		s.services["sapi"] = fakeService("sapi", "shop_api", map[string]string{"tierlb.service": "web", "tierlb.port": "9000"}, nil)
		s.tasks["t9"] = fakeTask{id: "t9", service: "sapi", node: "n1", slot: 1, nets: map[string]string{"front": "10.9.0.9"}, created: t0}.task()
	})
	f.send(t, events.Message{Type: events.ServiceEventType, Action: "create", Actor: events.Actor{ID: "sapi"}})
	testkit.Eventually(t, 2*time.Second, "the new service's task", func() bool {
		return strings.HasPrefix(swarmSummary(sink, "web"), "shop_api.1.t9@node-1=10.9.0.9:9000,")
	})
}

func TestSwarmStreamCutPollingCarriesOn(t *testing.T) {
	f, sink, _ := swarmSetup(t, Config{SwarmPoll: 5 * time.Millisecond})
	_, _, subs := f.counts()
	f.cut(errors.New("stream cut by a proxy"))
	f.editSwarm(func(s *fakeSwarm) { delete(s.tasks, "t2") })
	testkit.Eventually(t, 5*time.Second, "t2 to go by polling", func() bool {
		return swarmSummary(sink, "web") == "shop_web.1.t1@node-1=10.9.0.1:8080"
	})
	testkit.Eventually(t, 5*time.Second, "a new subscription", func() bool { _, _, s := f.counts(); return s > subs })
	if c := f.swarmCalls(); c["info"] != 1 {
		t.Errorf("swarm mode detected %d times, want once: the session went on", c["info"])
	}
}

func TestSwarmModeSetting(t *testing.T) {
	t.Run("false never asks the manager", func(t *testing.T) {
		f := newFakeClient().withSwarm()
		id := f.proxyOn(map[string]string{"front": "10.9.0.100"})
		sink := newFakeSink()
		p := startProvider(t, Config{ContainerID: id, Swarm: "false"}, []ServiceSelector{{Name: "web"}}, f, sink)
		testkit.Eventually(t, 2*time.Second, "first sync", func() bool { ok, _ := p.Ready(); return ok })
		if c := f.swarmCalls(); len(c) != 0 {
			t.Errorf("swarm API calls with docker.swarm false: %v", c)
		}
	})
	t.Run("auto on a worker is off", func(t *testing.T) {
		f := newFakeClient().withSwarm()
		f.swarm.worker = true
		id := f.proxyOn(map[string]string{"front": "10.9.0.100"})
		p := startProvider(t, Config{ContainerID: id}, []ServiceSelector{{Name: "web"}}, f, newFakeSink())
		testkit.Eventually(t, 2*time.Second, "first sync", func() bool { ok, _ := p.Ready(); return ok })
		if c := f.swarmCalls(); c["tasks"] != 0 || c["services"] != 0 {
			t.Errorf("swarm lists on a worker: %v", c)
		}
	})
	t.Run("auto behind a proxy that refuses info is off", func(t *testing.T) {
		f := newFakeClient().withSwarm()
		f.swarm.infoErr = cerrdefs.ErrPermissionDenied.WithMessage("403 forbidden by the socket proxy")
		id := f.proxyOn(map[string]string{"front": "10.9.0.100"})
		p := startProvider(t, Config{ContainerID: id}, []ServiceSelector{{Name: "web"}}, f, newFakeSink())
		testkit.Eventually(t, 2*time.Second, "first sync", func() bool { ok, _ := p.Ready(); return ok })
	})
	t.Run("true on a worker is an error", func(t *testing.T) {
		f := newFakeClient().withSwarm()
		f.swarm.worker = true
		id := f.proxyOn(map[string]string{"front": "10.9.0.100"})
		p := startProvider(t, Config{ContainerID: id, Swarm: "true"}, []ServiceSelector{{Name: "web"}}, f, newFakeSink())
		testkit.Eventually(t, 2*time.Second, "the reason", func() bool {
			_, why := p.Ready()
			return strings.Contains(why, "docker.swarm is true but the engine at unix:///fake.sock is not a Swarm manager (swarm: active, as a worker)")
		})
	})
}

// A task container is found through the Swarm API only, never also as a
// local container.
func TestSwarmTaskContainerNotDoubled(t *testing.T) {
	f := newFakeClient().withSwarm()
	id := f.proxyOn(map[string]string{"front": "10.9.0.100"})
	f.set(fakeCtr{id: "c-t1", name: "shop_web.1.t1", created: t0, nets: map[string]string{"front": "10.9.0.1"},
		labels: map[string]string{"tierlb.service": "web", "tierlb.port": "8080", taskIDLabel: "t1", serviceIDLabel: "sweb"}}.inspect())
	f.editSwarm(func(s *fakeSwarm) {
		s.nodes["n1"] = fakeNode("n1", "node-1")
		s.services["sweb"] = fakeService("sweb", "shop_web", nil, map[string]string{"tierlb.service": "web", "tierlb.port": "8080"})
		s.tasks["t1"] = fakeTask{id: "t1", service: "sweb", node: "n1", slot: 1, nets: map[string]string{"front": "10.9.0.1"}, created: t0}.task()
	})
	sink := newFakeSink()
	p := startProvider(t, Config{ContainerID: id, SwarmPoll: time.Hour}, []ServiceSelector{{Name: "web"}}, f, sink)
	testkit.Eventually(t, 2*time.Second, "first sync", func() bool { ok, _ := p.Ready(); return ok })
	if got := swarmSummary(sink, "web"); got != "shop_web.1.t1@node-1=10.9.0.1:8080" {
		t.Errorf("backends = %s", got)
	}
	if h, err := p.ContainerHealth(t.Context(), "c-t1"); err != nil || h != "none" {
		t.Errorf("ContainerHealth(c-t1) = %q, %v; want none from the task record", h, err)
	}
}

func TestFromTaskHealthAndState(t *testing.T) {
	svc := fakeService("s", "web", map[string]string{"tierlb.service": "web"}, nil)
	tk := fakeTask{id: "t", service: "s", node: "gone", slot: 2, nets: map[string]string{"a": "10.0.0.2"}}.task()
	tk.Spec.ContainerSpec.Healthcheck = healthcheck("CMD", "/probe")
	tk.Status.State = swarm.TaskStatePreparing
	row := func(tk swarm.Task) *taskRow {
		r, err := rowOf(tk)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	c, ok := fromTask(row(tk), svc, serviceLabels(svc), nil, "tierlb")
	if !ok || c.Health != "healthy" || c.Task.Wait != "task state is preparing, not running" || c.Task.Node != "gone" {
		t.Fatalf("record = %+v task %+v", c, c.Task)
	}
	tk.Status.State = swarm.TaskStateFailed
	if _, ok := fromTask(row(tk), svc, nil, nil, "tierlb"); ok {
		t.Error("a failed task has a record")
	}
	if got := slotName("web", 2, "t"); got != taskName("web", row(tk)) {
		t.Errorf("taskName = %s, want %s", taskName("web", row(tk)), got)
	}
	tk.Slot = 0
	if got := taskName("web", row(tk)); got != "web.gone.t" {
		t.Errorf("global task name = %s", got)
	}
	if !slices.Equal(c.Exposed(), nil) {
		t.Errorf("exposed = %v", c.Exposed())
	}
}

// tierlb on a worker reaches a manager through a socket proxy: the manager
// does not know its container, so its networks come from its task.
func TestSwarmProxyAsTaskOnAnotherNode(t *testing.T) {
	const own = "00000000000000000000000000000000000000000000000000000000000000aa"
	f := newFakeClient().withSwarm()
	f.editSwarm(func(s *fakeSwarm) {
		s.nodes["n1"] = fakeNode("n1", "node-1")
		s.nodes["n2"] = fakeNode("n2", "node-2")
		s.services["slb"] = fakeService("slb", "edge_tierlb", nil, nil)
		lb := fakeTask{id: "tlb", service: "slb", node: "n2", slot: 1, nets: map[string]string{"front": "10.9.0.100"}}.task()
		lb.Status.ContainerStatus.ContainerID = own
		s.tasks["tlb"] = lb
		s.services["sweb"] = fakeService("sweb", "shop_web", map[string]string{"tierlb.service": "web", "tierlb.port": "8080"}, nil)
		s.tasks["t1"] = fakeTask{id: "t1", service: "sweb", node: "n1", slot: 1, nets: map[string]string{"front": "10.9.0.1"}}.task()
	})
	sink := newFakeSink()
	p, err := New(Config{SwarmPoll: time.Hour}, []ServiceSelector{{Name: "web"}}, sink, Options{Client: f, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	p.getenv = func(string) string { return "" }
	p.readFile = func(string) ([]byte, error) {
		return []byte("1 2 0:3 /var/lib/docker/containers/" + own + "/hostname /etc/hostname rw - ext4 /dev/vda rw\n"), nil
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(t.Context()) }()
	t.Cleanup(func() { <-done })
	testkit.Eventually(t, 2*time.Second, "web's task on the proxy task's overlay", func() bool {
		return swarmSummary(sink, "web") == "shop_web.1.t1@node-1=10.9.0.1:8080"
	})
}

// During a rolling update the hot polls see a leaving task drop out of the
// list each time; it is inspected once, not on every hot poll.
func TestSwarmLeavingTaskInspectedOnce(t *testing.T) {
	f, sink, _ := swarmSetup(t, Config{SwarmPoll: time.Hour})
	f.send(t, events.Message{Type: events.ServiceEventType, Action: "update",
		Actor: events.Actor{ID: "sweb", Attributes: map[string]string{"name": "shop_web", "updatestate.new": "updating"}}})
	f.editSwarm(func(s *fakeSwarm) { tk := s.tasks["t2"]; tk.DesiredState = swarm.TaskStateShutdown; s.tasks["t2"] = tk })
	testkit.Eventually(t, 2*time.Second, "t2 to drain", func() bool {
		return strings.Contains(swarmSummary(sink, "web"), "(task desired state is shutdown)")
	})
	lists := f.swarmCalls()["tasks"]
	testkit.Eventually(t, 5*time.Second, "five more hot polls", func() bool { return f.swarmCalls()["tasks"] >= lists+5 })
	if n := f.swarmCalls()["task"]; n != 1 {
		t.Errorf("the leaving task was inspected %d times during hot polls, want once", n)
	}
}

// TestSwarmServiceGoneBeforeItsEvent: a poll that names a service removed
// since the last service list fails on the manager (it resolves every
// service of the filter); the provider relists the services and goes on,
// without ending its session.
func TestSwarmServiceGoneBeforeItsEvent(t *testing.T) {
	f, sink, _ := swarmSetup(t, Config{SwarmPoll: 20 * time.Millisecond})
	infos := f.swarmCalls()["info"]
	f.editSwarm(func(s *fakeSwarm) { // no event for either: both are seen by polling
		delete(s.services, "sweb")
		for id, tk := range s.tasks {
			if tk.ServiceID == "sweb" {
				delete(s.tasks, id)
			}
		}
		s.services["sapp"] = fakeService("sapp", "shop_app", map[string]string{"tierlb.service": "web", "tierlb.port": "8080"}, nil)
		s.tasks["t9"] = fakeTask{id: "t9", service: "sapp", node: "n3", slot: 1, nets: map[string]string{"front": "10.9.0.9"}, created: t0}.task()
	})
	want := "shop_app.1.t9@node-3=10.9.0.9:8080"
	testkit.Eventually(t, 5*time.Second, "the new service's task alone", func() bool { return swarmSummary(sink, "web") == want })
	lists := f.swarmCalls()["tasks"]
	testkit.Eventually(t, 5*time.Second, "three more polls", func() bool { return f.swarmCalls()["tasks"] >= lists+3 })
	if n := f.swarmCalls()["info"]; n != infos {
		t.Errorf("the session was restarted (%d engine infos, want %d)", n, infos)
	}
	if got := swarmSummary(sink, "web"); got != want {
		t.Errorf("backends = %s, want %s", got, want)
	}
}

// TestSwarmLeavingTasksReadInOneList: tasks that leave the list together
// (a node drained, a service scaled down by many) are read again with one
// list filtered by their IDs, not an inspect each.
func TestSwarmLeavingTasksReadInOneList(t *testing.T) {
	f, sink, _ := swarmSetup(t, Config{SwarmPoll: time.Hour})
	f.editSwarm(func(s *fakeSwarm) {
		for _, id := range []string{"t1", "t2"} {
			tk := s.tasks[id]
			tk.DesiredState = swarm.TaskStateShutdown
			s.tasks[id] = tk
		}
	})
	lists := f.swarmCalls()["tasks"]
	f.send(t, events.Message{Type: events.ServiceEventType, Action: "update",
		Actor: events.Actor{ID: "sweb", Attributes: map[string]string{"name": "shop_web", "replicas.old": "2", "replicas.new": "0"}}})
	testkit.Eventually(t, 2*time.Second, "both tasks to drain", func() bool {
		return strings.Count(swarmSummary(sink, "web"), "(task desired state is shutdown)") == 2
	})
	if n := f.swarmCalls()["task"]; n != 0 {
		t.Errorf("%d task inspects, want none (one list by ID)", n)
	}
	if n := f.swarmCalls()["tasks"] - lists; n != 2 {
		t.Errorf("%d task lists, want 2: the service's, then the two leaving tasks' by ID", n)
	}
}
