package proxy

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Rejection reasons, the values of the reason label of
// tierlb_connections_rejected_total.
const (
	RejectMaxConns   = "max_conns"
	RejectNotAllowed = "not_allowed"
	RejectNoBackend  = "no_backend"
	RejectDraining   = "draining"
)

// rejectReasons lists every reason, exported at zero for each service.
func rejectReasons() [4]string {
	return [...]string{RejectMaxConns, RejectNotAllowed, RejectNoBackend, RejectDraining}
}

// Metrics are the data path's per-service Prometheus series. Per-backend
// series are not here: a collector reads them from the backends' own atomics.
// One Metrics serves every Service of a process and survives reloads; a nil
// *Metrics records nothing.
type Metrics struct {
	accepted        *prometheus.CounterVec
	rejected        *prometheus.CounterVec
	connectDuration *prometheus.HistogramVec
	connDuration    *prometheus.HistogramVec
}

// NewMetrics creates the data-path metrics and registers them on reg. Metrics
// that are already registered (a second call with the same registry) are
// reused, so a reload does not fail.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierlb_connections_accepted_total",
			Help: "Client connections accepted by a service's listener, refused ones included.",
		}, []string{"service"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierlb_connections_rejected_total",
			Help: "Accepted client connections closed at once, by reason.",
		}, []string{"service", "reason"}),
		// 100µs to ~10s: a loopback or same-host dial is well under a
		// millisecond, a dead backend costs the whole connect timeout.
		connectDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tierlb_backend_connect_duration_seconds",
			Help:    "Time to establish a successful backend connection.",
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"service"}),
		// 1ms to 1h: from one request on a fresh connection to the default
		// idle timeout.
		connDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tierlb_connection_duration_seconds",
			Help:    "Lifetime of proxied connections, from accept to close.",
			Buckets: []float64{0.001, 0.005, 0.025, 0.1, 0.5, 1, 5, 30, 120, 600, 3600},
		}, []string{"service"}),
	}
	var err error
	m.accepted, err = register(reg, m.accepted)
	if err != nil {
		return nil, err
	}
	if m.rejected, err = register(reg, m.rejected); err != nil {
		return nil, err
	}
	if m.connectDuration, err = register(reg, m.connectDuration); err != nil {
		return nil, err
	}
	if m.connDuration, err = register(reg, m.connDuration); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the collector of the same description
// that is already registered.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if reg == nil {
		return c, nil
	}
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("register data-path metrics: %w", err)
}

// serviceMetrics are one service's series, resolved once so the hot path
// does no label lookups. A nil *serviceMetrics records nothing.
type serviceMetrics struct {
	accepted        prometheus.Counter
	rejected        map[string]prometheus.Counter
	connectDuration prometheus.Observer
	connDuration    prometheus.Observer
}

// initService resolves the service's series and exports every rejection
// reason at zero, so rates and alerts work before the first refusal.
func (m *Metrics) initService(name string) *serviceMetrics {
	if m == nil {
		return nil
	}
	sm := &serviceMetrics{
		accepted:        m.accepted.WithLabelValues(name),
		rejected:        make(map[string]prometheus.Counter, len(rejectReasons())),
		connectDuration: m.connectDuration.WithLabelValues(name),
		connDuration:    m.connDuration.WithLabelValues(name),
	}
	for _, r := range rejectReasons() {
		sm.rejected[r] = m.rejected.WithLabelValues(name, r)
	}
	return sm
}

// ForgetService deletes a service's series, once it is gone for good (removed
// and drained): services declared by container labels come and go, and their
// series must not pile up. The caller makes sure no running Service of that
// name is recording into them.
func (m *Metrics) ForgetService(name string) {
	if m == nil {
		return
	}
	m.accepted.DeleteLabelValues(name)
	m.connectDuration.DeleteLabelValues(name)
	m.connDuration.DeleteLabelValues(name)
	for _, r := range rejectReasons() {
		m.rejected.DeleteLabelValues(name, r)
	}
}

func (sm *serviceMetrics) connAccepted() {
	if sm != nil {
		sm.accepted.Inc()
	}
}

func (sm *serviceMetrics) connRejected(reason string) {
	if sm != nil {
		sm.rejected[reason].Inc()
	}
}

func (sm *serviceMetrics) dialed(seconds float64) {
	if sm != nil {
		sm.connectDuration.Observe(seconds)
	}
}

func (sm *serviceMetrics) connClosed(seconds float64) {
	if sm != nil {
		sm.connDuration.Observe(seconds)
	}
}
