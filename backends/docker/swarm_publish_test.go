package docker

import (
	"fmt"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/swarm"

	"github.com/tierlb/tierlb/internal/testkit"
)

// TestSwarmPollRecomputesOnlyChangedTasks: with the store's versions, a
// poll that finds one service's task replaced recomputes that task's
// route alone; every other task keeps its record and its route, and a
// node's change reaches its tasks.
func TestSwarmPollRecomputesOnlyChangedTasks(t *testing.T) {
	f := newFakeClient().withSwarm()
	cfg := Config{SwarmPoll: 5 * time.Millisecond, ContainerID: f.proxyOn(map[string]string{"front": "10.9.0.100"})}
	var version uint64
	next := func() swarm.Version { version++; return swarm.Version{Index: version} }
	task := func(id, svc, node string, slot int, ip string) swarm.Task {
		tk := fakeTask{id: id, service: svc, node: node, slot: slot, nets: map[string]string{"front": ip}, created: t0}.task()
		tk.Version = next()
		return tk
	}
	f.editSwarm(func(s *fakeSwarm) {
		for i := 1; i <= 2; i++ {
			id := fmt.Sprintf("n%d", i)
			n := fakeNode(id, fmt.Sprintf("node-%d", i))
			n.Version = next()
			s.nodes[id] = n
		}
		for _, name := range []string{"web", "db"} {
			svc := fakeService("s"+name, name, map[string]string{"tierlb.service": name, "tierlb.port": "80"}, nil)
			svc.Version = next()
			s.services[svc.ID] = svc
		}
		s.tasks["w1"] = task("w1", "sweb", "n1", 1, "10.9.0.1")
		s.tasks["w2"] = task("w2", "sweb", "n2", 2, "10.9.0.2")
		s.tasks["d1"] = task("d1", "sdb", "n1", 1, "10.9.0.11")
		s.tasks["d2"] = task("d2", "sdb", "n2", 2, "10.9.0.12")
	})
	sink := newFakeSink()
	p := startProvider(t, cfg, []ServiceSelector{{Name: "web"}, {Name: "db"}}, f, sink)
	testkit.Eventually(t, 5*time.Second, "first sync", func() bool {
		return len(sink.get("web")) == 2 && len(sink.get("db")) == 2
	})
	routesNow := func() map[string]*route {
		p.mu.Lock()
		defer p.mu.Unlock()
		out := map[string]*route{}
		for ref, rt := range p.routes.byRef {
			out[ref] = rt
		}
		return out
	}
	// awaitPolls waits for n more task lists, so that any rebuild would
	// have happened.
	awaitPolls := func(n int) {
		t.Helper()
		from := f.swarmCalls()["tasks"]
		testkit.Eventually(t, 5*time.Second, "task polls", func() bool { return f.swarmCalls()["tasks"] >= from+n })
	}
	awaitPolls(2)
	before := routesNow()

	// web's w1 is replaced by w3 (as on a remote node: no event).
	f.editSwarm(func(s *fakeSwarm) {
		delete(s.tasks, "w1")
		s.tasks["w3"] = task("w3", "sweb", "n1", 1, "10.9.0.3")
	})
	want := "web.1.w3@node-1=10.9.0.3:80,web.2.w2@node-2=10.9.0.2:80"
	testkit.Eventually(t, 5*time.Second, "w3 in place of w1", func() bool { return swarmSummary(sink, "web") == want })
	awaitPolls(3)
	after := routesNow()
	for _, ref := range []string{"task:w2", "task:d1", "task:d2"} {
		if before[ref] == nil || after[ref] != before[ref] {
			t.Errorf("%s: route %p, then %p: recomputed though its task did not change", ref, before[ref], after[ref])
		}
	}
	if after["task:w1"] != nil || after["task:w3"] == nil {
		t.Errorf("w1's route %v, w3's %v: want w1's gone and w3's made", after["task:w1"], after["task:w3"])
	}

	// A node's event relists the nodes and every task: only the records
	// of the drained node's tasks are rebuilt.
	f.editSwarm(func(s *fakeSwarm) {
		n := s.nodes["n2"]
		n.Spec.Availability, n.Version = swarm.NodeAvailabilityDrain, next()
		s.nodes["n2"] = n
	})
	f.send(t, events.Message{Type: events.NodeEventType, Action: "update", Actor: events.Actor{ID: "n2"}})
	testkit.Eventually(t, 5*time.Second, "node-2's tasks to drain", func() bool {
		return swarmSummary(sink, "db") == "db.1.d1@node-1=10.9.0.11:80,db.2.d2@node-2=10.9.0.12:80(node node-2 is drained)"
	})
	awaitPolls(3)
	drained := routesNow()
	for _, ref := range []string{"task:w3", "task:d1"} {
		if drained[ref] != after[ref] {
			t.Errorf("%s: recomputed though its node did not change", ref)
		}
	}
	for _, ref := range []string{"task:w2", "task:d2"} {
		if drained[ref] == after[ref] {
			t.Errorf("%s: not recomputed though its node was drained", ref)
		}
	}
}
