package health

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tierlb/tierlb/internal/promreg"
)

// Metrics holds the health check metrics. A nil *Metrics records nothing, so
// packages and tests that do not care pass nil.
type Metrics struct {
	checks *checksCollector
}

// NewMetrics registers the health metrics on reg. Registering twice on the
// same registry (a config reload building new monitors) reuses the existing
// collector instead of failing.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	checks, err := promreg.Register(reg, newChecksCollector(), "tierlb_health_checks_total")
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

// checksCollector exports tierlb_health_checks_total from two counts per
// probed backend, made at scrape time. A CounterVec child per series (label
// pairs, a created timestamp, the vector's index) costs about 600 B, and
// every probed backend has two: at thousands of backends they cost more
// than everything else a backend does. The exposition is the same.
type checksCollector struct {
	desc *prometheus.Desc

	mu     sync.Mutex
	series map[seriesKey]*checkCounts
}

type seriesKey struct{ service, backend string }

// checkCounts are one backend's probes by result.
type checkCounts struct {
	ok, fail atomic.Uint64
	created  int64 // unix nanoseconds, the series' created timestamp
}

func newChecksCollector() *checksCollector {
	return &checksCollector{
		desc: prometheus.NewDesc("tierlb_health_checks_total",
			"Active health check probes by result.", []string{"service", "backend", "result"}, nil),
		series: map[seriesKey]*checkCounts{},
	}
}

// Describe sends the one descriptor.
func (c *checksCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect sends both results of every backend. The registry sorts them.
func (c *checksCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, n := range c.series {
		created := time.Unix(0, n.created)
		c.send(ch, float64(n.ok.Load()), created, k, resultOK)
		c.send(ch, float64(n.fail.Load()), created, k, resultFail)
	}
}

// send sends one sample. A label value Prometheus refuses (invalid UTF-8 in
// a static backend's name) becomes an invalid metric, which the scrape
// reports as an error.
func (c *checksCollector) send(ch chan<- prometheus.Metric, v float64, created time.Time, k seriesKey, result string) {
	m, err := prometheus.NewConstMetricWithCreatedTimestamp(c.desc, prometheus.CounterValue, v, created, k.service, k.backend, result)
	if err != nil {
		m = prometheus.NewInvalidMetric(c.desc, err)
	}
	ch <- m
}

// counts returns the counts of one backend, made at zero if it has none.
func (c *checksCollector) counts(service, backend string) *checkCounts {
	k := seriesKey{service, backend}
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.series[k]
	if n == nil {
		n = &checkCounts{created: time.Now().UnixNano()}
		c.series[k] = n
	}
	return n
}

// backendAdded exports both results of a new backend at zero, so rates and
// alerts work before its first failure.
func (m *Metrics) backendAdded(service, backend string) {
	if m == nil {
		return
	}
	m.checks.counts(service, backend)
}

// backendRemoved deletes the series of a backend that went away.
func (m *Metrics) backendRemoved(service, backend string) {
	if m == nil {
		return
	}
	m.checks.mu.Lock()
	delete(m.checks.series, seriesKey{service, backend})
	m.checks.mu.Unlock()
}

// checked counts one probe.
func (m *Metrics) checked(service, backend string, ok bool) {
	m.series(service, backend).count(ok)
}

// checkSeries are one backend's counts, looked up once per prober rather
// than by label values at every probe.
type checkSeries struct{ n *checkCounts }

// series returns the counts of one backend, exported from now on; nil
// Metrics gives counts that count nothing.
func (m *Metrics) series(service, backend string) checkSeries {
	if m == nil {
		return checkSeries{}
	}
	return checkSeries{m.checks.counts(service, backend)}
}

// count counts one probe.
func (s checkSeries) count(ok bool) {
	switch {
	case s.n == nil:
	case ok:
		s.n.ok.Add(1)
	default:
		s.n.fail.Add(1)
	}
}
