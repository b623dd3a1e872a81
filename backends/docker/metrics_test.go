package docker

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
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
	if n := testutil.CollectAndCount(m.events); n != len(eventTypes) {
		t.Fatalf("%d event series, want %d exported at zero", n, len(eventTypes))
	}
}
