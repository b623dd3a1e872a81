package scale

import (
	"testing"
	"time"
)

// TestSwarmDiscoveryAtScale runs the real binary on 1,000 Swarm tasks over
// 10 services on 5 nodes, then a churn of Swarm operations (scale up and
// down, rolling update steps, a node drain, a service removal). It holds
// tierlb to what speed cannot change: every task routed and reached, the
// pools matching Swarm's tasks after the churn (checked inside Run), and
// the Engine API requests each phase costs. Lags are wall time and only
// logged (see TestDiscoveryAtScale); bench/scale -swarm reports them.
func TestSwarmDiscoveryAtScale(t *testing.T) {
	const poll = time.Second
	f, err := Run(t.Context(), Params{Binary: binary, Swarm: true, Containers: 1000, Services: 10, Nodes: 5,
		SwarmPoll: poll, ChurnRate: 10, ChurnFor: 3 * time.Second, StepGap: time.Second, RestFor: 3 * time.Second,
		Samples: 5, RoutedWithin: 60 * time.Second, Progress: func(s string) { t.Log(s) }})
	if err != nil {
		t.Fatal(err)
	}
	// At start: one service list, one node list and one task list for
	// every service, whatever K; no task read on its own.
	start := f.StartRequests
	if start["GET /services"] != 1 || start["GET /nodes"] != 1 || start["GET /tasks"] < 1 || start["GET /tasks"] > 1+int(f.Routed/poll)+1 ||
		start["GET /tasks/{id}"] > 0 || start["GET /containers/{id}/json"] > 1 {
		t.Errorf("requests at start: %v; want one service list, one node list, one task list (and one per poll), one own inspect", start)
	}
	c := f.Churn
	if c == nil {
		t.Fatal("no churn figures")
	}
	// Each operation's event rereads the services and that service's
	// tasks once; the hot polls (100ms for 5s after an event) and the
	// regular ones add task lists, bounded by time, not by tasks; a task
	// that left is read on its own until it has stopped.
	span := c.For + 20*time.Second // the churn, the wait for its changes, the settling
	if n, max := c.Requests["GET /tasks"], c.Events+int(span/(100*time.Millisecond))+1; n > max {
		t.Errorf("churn: %d task lists for %d events, want at most %d", n, c.Events, max)
	}
	if n := c.Requests["GET /services"]; n > c.Events+int(span/(30*time.Second))+1 {
		t.Errorf("churn: %d service lists for %d events", n, c.Events)
	}
	if n := c.Requests["GET /containers/json"] + c.Requests["GET /containers/{id}/json"]; n > 0 {
		t.Errorf("churn: %d container requests, want none (no task runs on tierlb's node)", n)
	}
	if len(c.Missed) > 0 {
		t.Logf("churn: %d changes not logged as such (a step overtaken by the next on a busy machine): %v", len(c.Missed), c.Missed[:min(5, len(c.Missed))])
	}
	// At rest only the regular task poll runs: one list per swarm_poll,
	// and a resync's requests should the 30s resync_interval fall in the
	// window on a slow machine.
	rest := f.RestRequests
	if n := rest["GET /tasks"]; n < 1 || n > int(f.RestFor/poll)+3 {
		t.Errorf("at rest for %s: %d task lists; want one per %s", f.RestFor, n, poll)
	}
	for k, n := range rest {
		switch k {
		case "GET /tasks":
		case "GET /containers/json", "GET /containers/{id}/json", "GET /services", "GET /nodes":
			if n > 1 {
				t.Errorf("at rest for %s: %d %s, more than one resync's", f.RestFor, n, k)
			}
		default:
			t.Errorf("at rest for %s: %d %s; want only task lists", f.RestFor, n, k)
		}
	}
	for _, w := range f.Warnings {
		t.Errorf("tierlb warned: %s", w)
	}
	per := f.RestBytes["GET /tasks"] / int64(max(1, rest["GET /tasks"]))
	t.Logf("1,000 tasks: routed in %s (CPU %s), RSS %d KiB; churn %d ops, %d events, lag p50 %s max %s (added p50 %s, draining p50 %s, removed p50 %s), CPU %s; at rest %d KB per task list",
		f.Routed, f.RoutedCPU, f.RSS>>10, c.Ops, c.Events, c.Quantile(0.5), c.Quantile(1),
		c.KindQuantile("added", 0.5), c.KindQuantile("draining", 0.5), c.KindQuantile("removed", 0.5), c.CPU, per>>10)
}
