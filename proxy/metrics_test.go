package proxy

import (
	"maps"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tierlb/tierlb/backends"
	"github.com/tierlb/tierlb/internal/testkit"
)

// refMetrics are the data-path series built from Prometheus vectors, one
// child per series: the exposition Metrics must reproduce.
type refMetrics struct {
	accepted, rejected, localErrors *prometheus.CounterVec
	connectDuration, connDuration   *prometheus.HistogramVec
}

func newRefMetrics(reg *prometheus.Registry) *refMetrics {
	r := &refMetrics{
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierlb_connections_accepted_total",
			Help: "Client connections accepted by a service's listener, refused ones included.",
		}, []string{"service"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierlb_connections_rejected_total",
			Help: "Accepted client connections closed at once, by reason.",
		}, []string{"service", "reason"}),
		connectDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tierlb_backend_connect_duration_seconds",
			Help:    "Time to establish a successful backend connection.",
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"service"}),
		connDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tierlb_connection_duration_seconds",
			Help:    "Lifetime of proxied connections, from accept to close.",
			Buckets: []float64{0.001, 0.005, 0.025, 0.1, 0.5, 1, 5, 30, 120, 600, 3600},
		}, []string{"service"}),
		localErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierlb_local_errors_total",
			Help: "Backend dials that failed for want of local resources (descriptors, memory, local ports): tierlb's trouble, never counted against a backend.",
		}, []string{"service", "errno"}),
	}
	reg.MustRegister(r.accepted, r.rejected, r.connectDuration, r.connDuration, r.localErrors)
	return r
}

func (r *refMetrics) initService(name string) {
	r.accepted.WithLabelValues(name)
	r.connectDuration.WithLabelValues(name)
	r.connDuration.WithLabelValues(name)
	for _, reason := range rejectReasons() {
		r.rejected.WithLabelValues(name, reason)
	}
	for _, e := range backends.LocalDialErrors {
		r.localErrors.WithLabelValues(name, e)
	}
}

func (r *refMetrics) forget(name string) {
	r.accepted.DeleteLabelValues(name)
	r.connectDuration.DeleteLabelValues(name)
	r.connDuration.DeleteLabelValues(name)
	for _, reason := range rejectReasons() {
		r.rejected.DeleteLabelValues(name, reason)
	}
	for _, e := range backends.LocalDialErrors {
		r.localErrors.DeleteLabelValues(name, e)
	}
}

// TestMetricsExposition records the same events into Metrics and into
// Prometheus vectors and compares the two expositions: names, help, labels,
// buckets (bounds included: 0.1 falls in the 0.1 bucket), sums and counts.
func TestMetricsExposition(t *testing.T) {
	reg, refReg := prometheus.NewRegistry(), prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := NewMetrics(reg); err != nil || again != m {
		t.Fatalf("second NewMetrics on the same registry = %p, %v; want the first, %p", again, err, m)
	}
	ref := newRefMetrics(refReg)

	type event struct {
		service string
		op      string // accept, reject, dial, close, local
		reason  string
		v       float64
		i       int
	}
	events := []event{
		{service: "web", op: "accept"},
		{service: "web", op: "accept"},
		{service: "web", op: "reject", reason: RejectMaxConns},
		{service: "web", op: "reject", reason: RejectNoClientData},
		{service: "web", op: "dial", v: 0.0001},
		{service: "web", op: "dial", v: 0.0003},
		{service: "web", op: "dial", v: 42},
		{service: "web", op: "close", v: 0.1},
		{service: "web", op: "close", v: 7200},
		{service: "web", op: "local", i: 1},
		{service: "db", op: "accept"},
		{service: "db", op: "dial", v: 0},
		{service: "db", op: "close", v: 0.0005},
		{service: "db", op: "reject", reason: RejectLocalError},
		{service: "gone", op: "accept"},
	}
	sms := map[string]*serviceMetrics{}
	for _, name := range []string{"web", "db", "gone", "idle", `q"uote\`, "web-1"} {
		sms[name] = m.initService(name)
		ref.initService(name)
	}
	if m.initService("web") != sms["web"] {
		t.Error("a second Service of the same name got other series; counts would restart on reload")
	}
	for _, e := range events {
		sm := sms[e.service]
		switch e.op {
		case "accept":
			sm.connAccepted()
			ref.accepted.WithLabelValues(e.service).Inc()
		case "reject":
			sm.connRejected(e.reason)
			ref.rejected.WithLabelValues(e.service, e.reason).Inc()
		case "dial":
			sm.dialed(e.v)
			ref.connectDuration.WithLabelValues(e.service).Observe(e.v)
		case "close":
			sm.connClosed(e.v)
			ref.connDuration.WithLabelValues(e.service).Observe(e.v)
		case "local":
			sm.localError(e.i)
			ref.localErrors.WithLabelValues(e.service, backends.LocalDialErrors[e.i]).Inc()
		}
	}
	m.ForgetService("gone")
	ref.forget("gone")

	got, want := testkit.Gathered(t, reg), testkit.Gathered(t, refReg)
	if got != want {
		t.Errorf("exposition differs from Prometheus vectors'\n--- got\n%s\n--- want\n%s", got, want)
	}
	// The text scrape writes the families without gathering them.
	if streamed := testkit.Streamed(t, m.Families(), m.Snapshot); streamed != want {
		t.Errorf("streamed exposition differs from the registry's\n--- got\n%s\n--- want\n%s", streamed, want)
	}
	for _, s := range []string{`tierlb_connections_rejected_total{reason="draining",service="idle"} 0`,
		`tierlb_connection_duration_seconds_bucket{service="web",le="0.1"} 1`} {
		if !strings.Contains(got, s) {
			t.Errorf("exposition lacks %s", s)
		}
	}
	if strings.Contains(got, `"gone"`) {
		t.Error("a forgotten service is still exported")
	}

	// What the status page's history reads: every reason summed, per
	// service, added to what is there.
	rejected := map[string]uint64{"web": 10}
	m.Rejected(rejected)
	if want := (map[string]uint64{"web": 12, "db": 1, "idle": 0, `q"uote\`: 0, "web-1": 0}); !maps.Equal(rejected, want) {
		t.Errorf("Rejected gave %v, want %v", rejected, want)
	}

	var none *Metrics
	none.Rejected(rejected)
	sm := none.initService("x")
	sm.connAccepted()
	sm.connRejected(RejectDraining)
	sm.dialed(1)
	sm.connClosed(1)
	sm.localError(0)
	none.ForgetService("x")
}

// TestMetricsMemory bounds the live heap a service's series cost: with
// hundreds of services, a Prometheus child per series made them the
// largest part of an idle process.
func TestMetricsMemory(t *testing.T) {
	const n = 1000
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, n)
	for i := range names {
		names[i] = "service-" + strings.Repeat("x", i%8) + string(rune('a'+i%26)) + string(rune('a'+i/26%26))
	}
	keep := make([]*serviceMetrics, n)
	before := liveHeap()
	for i, name := range names {
		keep[i] = m.initService(name)
	}
	after := liveHeap()
	runtime.KeepAlive(keep)
	per := float64(int64(after)-int64(before)) / n
	t.Logf("%.0f bytes of live heap per service's series", per)
	// serviceMetrics is ~450 bytes, the map entry under 100; Prometheus
	// children took ~8 kB.
	if per > 1024 {
		t.Errorf("live heap per service's series = %.0f bytes, want at most 1024", per)
	}
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// acceptedCount is tierlb_connections_accepted_total of service.
func (m *Metrics) acceptedCount(service string) float64 {
	return float64(m.initService(service).accepted.Load())
}

// rejectedCount is tierlb_connections_rejected_total of service and reason.
func (m *Metrics) rejectedCount(service, reason string) float64 {
	return float64(m.initService(service).rejected[rejectIndex(reason)].Load())
}
