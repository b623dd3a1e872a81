package health

import (
	"bytes"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// The collector's exposition is the one a CounterVec with a child per
// series gave, byte for byte, and its counters carry a created timestamp as
// the children did.
func TestMetricsExposition(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	ref := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tierlb_health_checks_total",
		Help: "Active health check probes by result.",
	}, []string{"service", "backend", "result"})
	refReg := prometheus.NewPedanticRegistry()
	refReg.MustRegister(ref)

	for _, id := range []string{"web-2", "web-1", "web-10", "gone"} {
		m.backendAdded("app", id)
		ref.WithLabelValues("app", id, resultOK)
		ref.WithLabelValues("app", id, resultFail)
	}
	m.backendAdded("db", "db-1")
	ref.WithLabelValues("db", "db-1", resultOK)
	ref.WithLabelValues("db", "db-1", resultFail)
	for range 3 {
		m.checked("app", "web-1", true)
		ref.WithLabelValues("app", "web-1", resultOK).Inc()
	}
	m.series("db", "db-1").count(false)
	ref.WithLabelValues("db", "db-1", resultFail).Inc()
	m.backendRemoved("app", "gone")
	ref.DeleteLabelValues("app", "gone", resultOK)
	ref.DeleteLabelValues("app", "gone", resultFail)

	text := func(g prometheus.Gatherer) string {
		t.Helper()
		mfs, err := g.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
		for _, mf := range mfs {
			if err := enc.Encode(mf); err != nil {
				t.Fatal(err)
			}
		}
		return b.String()
	}
	got, want := text(reg), text(refReg)
	if got != want {
		t.Fatalf("exposition:\n%s\nwant (CounterVec):\n%s", got, want)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range mfs[0].GetMetric() {
		if s.GetCounter().GetCreatedTimestamp() == nil {
			t.Fatalf("series %v has no created timestamp", s.GetLabel())
		}
	}
}
