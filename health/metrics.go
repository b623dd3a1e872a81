package health

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tierlb/tierlb/internal/promreg"
)

// Metrics holds the health check metrics. A nil *Metrics records nothing, so
// packages and tests that do not care pass nil.
type Metrics struct {
	checks *prometheus.CounterVec
}

// NewMetrics registers the health metrics on reg. Registering twice on the
// same registry (a config reload building new monitors) reuses the existing
// collector instead of failing.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	checks := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tierlb_health_checks_total",
		Help: "Active health check probes by result.",
	}, []string{"service", "backend", "result"})
	checks, err := promreg.Register(reg, checks, "tierlb_health_checks_total")
	if err != nil {
		return nil, err
	}
	return &Metrics{checks: checks}, nil
}

// The result label values.
const (
	resultOK   = "ok"
	resultFail = "fail"
)

// backendAdded exports both results of a new backend at zero, so rates and
// alerts work before its first failure.
func (m *Metrics) backendAdded(service, backend string) {
	if m == nil {
		return
	}
	m.checks.WithLabelValues(service, backend, resultOK)
	m.checks.WithLabelValues(service, backend, resultFail)
}

// backendRemoved deletes the series of a backend that went away.
func (m *Metrics) backendRemoved(service, backend string) {
	if m == nil {
		return
	}
	m.checks.DeleteLabelValues(service, backend, resultOK)
	m.checks.DeleteLabelValues(service, backend, resultFail)
}

// checked counts one probe.
func (m *Metrics) checked(service, backend string, ok bool) {
	m.series(service, backend).count(ok)
}

// checkSeries are one backend's two counters, looked up once per prober
// rather than by label values at every probe.
type checkSeries struct{ ok, fail prometheus.Counter }

// series returns the counters of one backend; nil Metrics gives counters
// that count nothing.
func (m *Metrics) series(service, backend string) checkSeries {
	if m == nil {
		return checkSeries{}
	}
	return checkSeries{
		ok:   m.checks.WithLabelValues(service, backend, resultOK),
		fail: m.checks.WithLabelValues(service, backend, resultFail),
	}
}

// count counts one probe.
func (s checkSeries) count(ok bool) {
	c := s.fail
	if ok {
		c = s.ok
	}
	if c != nil {
		c.Inc()
	}
}
