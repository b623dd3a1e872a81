package docker

import (
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tierlb/tierlb/internal/testkit"
)

func TestMetricsNilSafe(t *testing.T) {
	var m *Metrics
	m.event("start")
	m.failed()
	m.setUnrouted(3)
}

func TestMetricsZeroSeriesAndReuse(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	again, err := NewMetrics(reg) // a reload registers again
	if err != nil {
		t.Fatalf("second registration: %v", err)
	}
	again.event("kill")
	m.failed()
	want := `
# HELP tierlb_discovery_errors_total Discovery failures (engine unreachable, event stream broken, failed list or inspect).
# TYPE tierlb_discovery_errors_total counter
tierlb_discovery_errors_total{provider="docker"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "tierlb_discovery_errors_total"); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.events.WithLabelValues("docker", "kill")); got != 1 {
		t.Fatalf("kill events = %v, want 1 shared across registrations", got)
	}
	want = `
# HELP tierlb_discovery_events_total Discovery events handled, by provider and event type.
# TYPE tierlb_discovery_events_total counter
tierlb_discovery_events_total{provider="docker",type="connect"} 0
tierlb_discovery_events_total{provider="docker",type="create"} 0
tierlb_discovery_events_total{provider="docker",type="destroy"} 0
tierlb_discovery_events_total{provider="docker",type="die"} 0
tierlb_discovery_events_total{provider="docker",type="disconnect"} 0
tierlb_discovery_events_total{provider="docker",type="health_status"} 0
tierlb_discovery_events_total{provider="docker",type="kill"} 1
tierlb_discovery_events_total{provider="docker",type="node_create"} 0
tierlb_discovery_events_total{provider="docker",type="node_remove"} 0
tierlb_discovery_events_total{provider="docker",type="node_update"} 0
tierlb_discovery_events_total{provider="docker",type="pause"} 0
tierlb_discovery_events_total{provider="docker",type="rename"} 0
tierlb_discovery_events_total{provider="docker",type="service_create"} 0
tierlb_discovery_events_total{provider="docker",type="service_remove"} 0
tierlb_discovery_events_total{provider="docker",type="service_update"} 0
tierlb_discovery_events_total{provider="docker",type="start"} 0
tierlb_discovery_events_total{provider="docker",type="stop"} 0
tierlb_discovery_events_total{provider="docker",type="unpause"} 0
tierlb_discovery_events_total{provider="docker",type="update"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "tierlb_discovery_events_total"); err != nil {
		t.Fatalf("event series exported at zero, counted once across registrations: %v", err)
	}
}

// TestMetricsSwarmTypesExported: every type a Swarm-mode provider counts,
// for service, node and task container events, is a series exported at
// zero from the start, not one that appears with its first event.
func TestMetricsSwarmTypesExported(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	f, _, _ := countedSwarmSetup(t, Config{SwarmPoll: time.Hour}, m)
	exported := testutil.CollectAndCount(m.events)
	task := map[string]string{taskIDLabel: "t1", serviceIDLabel: "sweb", "signal": "15"}
	sent := []events.Message{
		{Type: events.ContainerEventType, Action: "create", Actor: events.Actor{ID: "c-t1", Attributes: task}},
		{Type: events.ContainerEventType, Action: "update", Actor: events.Actor{ID: "c-t1", Attributes: task}},
		{Type: events.ContainerEventType, Action: "kill", Actor: events.Actor{ID: "c-t1", Attributes: task}},
		{Type: events.NodeEventType, Action: "create", Actor: events.Actor{ID: "n4"}},
		{Type: events.NodeEventType, Action: "update", Actor: events.Actor{ID: "n2"}},
		{Type: events.NodeEventType, Action: "remove", Actor: events.Actor{ID: "n4"}},
		{Type: events.ServiceEventType, Action: "create", Actor: events.Actor{ID: "sapi"}},
		{Type: events.ServiceEventType, Action: "update", Actor: events.Actor{ID: "sweb"}},
		{Type: events.ServiceEventType, Action: "remove", Actor: events.Actor{ID: "sapi"}},
	}
	for _, ev := range sent {
		f.send(t, ev)
	}
	counted := func() float64 {
		n := 0.0
		for _, typ := range []string{"create", "update", "kill", "node_create", "node_update", "node_remove",
			"service_create", "service_update", "service_remove"} {
			n += testutil.ToFloat64(m.events.WithLabelValues("docker", typ))
		}
		return n
	}
	testkit.Eventually(t, 5*time.Second, "every event counted", func() bool { return counted() >= float64(len(sent)) })
	if got := counted(); got != float64(len(sent)) {
		t.Errorf("counted %v events, want %d, one per type", got, len(sent))
	}
	if n := testutil.CollectAndCount(m.events); n != exported {
		t.Errorf("%d event series after the events, want the %d exported at zero", n, exported)
	}
}
