package admin

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// registerPackageMetrics adds the other packages' metrics and the Go and
// process collectors, as cmd/ does, so the lint sees the whole /metrics.
func registerPackageMetrics(t *testing.T, reg *prometheus.Registry) {
	t.Helper()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

// TestMetricNamesPassPromlint lints everything a tierlb /metrics serves.
func TestMetricNamesPassPromlint(t *testing.T) {
	set := newTestSet(t, "app", "127.0.0.1:8001")
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(ServiceList{{Name: "app", Set: set}}))
	registerPackageMetrics(t, reg)
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
	if len(mfs) < 5 {
		t.Fatalf("linted %d metric families, want at least the 5 backend ones", len(mfs))
	}
}
