package admin

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	"github.com/tierlb/tierlb/backends"
	"github.com/tierlb/tierlb/backends/docker"
	"github.com/tierlb/tierlb/health"
	"github.com/tierlb/tierlb/internal/testkit"
	"github.com/tierlb/tierlb/proxy"
)

// specMetrics is SPEC.md's metric table: the names dashboards and alerts
// rely on, with their types.
var specMetrics = map[string]dto.MetricType{
	"tierlb_connections_accepted_total":       dto.MetricType_COUNTER,
	"tierlb_connections_rejected_total":       dto.MetricType_COUNTER,
	"tierlb_backend_connections_total":        dto.MetricType_COUNTER,
	"tierlb_backend_connections_active":       dto.MetricType_GAUGE,
	"tierlb_backend_connect_errors_total":     dto.MetricType_COUNTER,
	"tierlb_backend_bytes_total":              dto.MetricType_COUNTER,
	"tierlb_backend_up":                       dto.MetricType_GAUGE,
	"tierlb_backend_connect_duration_seconds": dto.MetricType_HISTOGRAM,
	"tierlb_connection_duration_seconds":      dto.MetricType_HISTOGRAM,
	"tierlb_health_checks_total":              dto.MetricType_COUNTER,
	"tierlb_discovery_events_total":           dto.MetricType_COUNTER,
	"tierlb_discovery_errors_total":           dto.MetricType_COUNTER,
	"tierlb_config_reloads_total":             dto.MetricType_COUNTER,
}

// registerPackageMetrics registers what cmd/ registers besides the backend
// collector: the data path's, health's and discovery's metrics and the Go and
// process collectors. It drives a real service and health monitor far enough
// that their zero-valued series exist, since families without series are not
// gathered and so not linted.
func registerPackageMetrics(t *testing.T, reg *prometheus.Registry, set *backends.Set) {
	t.Helper()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	pm, err := proxy.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := proxy.NewService(proxy.Config{Name: set.Name(), Listen: "127.0.0.1:0"}, set, proxy.Options{Metrics: pm}); err != nil {
		t.Fatal(err)
	}
	if _, err := docker.NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	hm, err := health.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	mon, err := health.NewMonitor(set, health.Config{Type: health.TypeTCP, Interval: time.Hour}, health.Options{Metrics: hm})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mon.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	testkit.Eventually(t, 10*time.Second, "the health monitor to export tierlb_health_checks_total", func() bool {
		return gathered(t, reg, "tierlb_health_checks_total")
	})
}

func gathered(t *testing.T, g prometheus.Gatherer, name string) bool {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return true
		}
	}
	return false
}

// TestMetricsLintAndMatchSpec lints everything a tierlb /metrics serves and
// checks every SPEC metric is there with its type (the reload counter lives
// in cmd/ and is checked there).
func TestMetricsLintAndMatchSpec(t *testing.T) {
	set := newTestSet(t, "app", "127.0.0.1:8001")
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(ServiceList{{Name: "app", Set: set}}))
	registerPackageMetrics(t, reg, set)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	types := map[string]dto.MetricType{}
	for _, mf := range mfs {
		types[mf.GetName()] = mf.GetType()
	}
	for name, typ := range specMetrics {
		if name == "tierlb_config_reloads_total" {
			continue
		}
		if got, ok := types[name]; !ok {
			t.Errorf("%s: SPEC lists it, /metrics lacks it", name)
		} else if got != typ {
			t.Errorf("%s: type %v, SPEC says %v", name, got, typ)
		}
	}
}
