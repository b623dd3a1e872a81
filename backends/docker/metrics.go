package docker

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tierlb/tierlb/internal/promreg"
)

// eventTypes are the container and network actions the provider asks the
// daemon for, and counts.
var eventTypes = []string{
	"start", "die", "kill", "stop", "pause", "unpause", "health_status",
	"destroy", "rename", "connect", "disconnect",
}

// countedTypes is every value the type label can take, exported at zero
// from the start so that rates and alerts work before the first event.
// Swarm's are there whether or not the engine turns out to be a manager:
// with docker.swarm auto, that is known only once the provider runs.
func countedTypes() []string {
	return append(slices.Clone(eventTypes),
		// Swarm mode asks for create, update and remove (eventFilters); the
		// daemon's action filter is not per type, so task containers'
		// create and update come too.
		"create", "update",
		"service_create", "service_update", "service_remove",
		"node_create", "node_update", "node_remove",
	)
}

// Metrics counts discovery activity. A nil *Metrics counts nothing, so the
// provider never checks.
type Metrics struct {
	events   *prometheus.CounterVec
	errors   *prometheus.CounterVec
	unrouted *prometheus.GaugeVec
}

// NewMetrics registers the discovery metrics on reg. Collectors already
// registered (by an earlier provider, across a reload) are reused.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierlb_discovery_events_total",
			Help: "Discovery events handled, by provider and event type.",
		}, []string{"provider", "type"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierlb_discovery_errors_total",
			Help: "Discovery failures (engine unreachable, event stream broken, failed list or inspect).",
		}, []string{"provider"}),
		unrouted: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tierlb_discovery_unrouted_containers",
			Help: "Containers seen that are not routed (no shared network, no port, bad labels, ...); see /api/v1/explain.",
		}, []string{"provider"}),
	}
	var err error
	if m.events, err = promreg.Register(reg, m.events, "discovery metrics"); err != nil {
		return nil, err
	}
	if m.errors, err = promreg.Register(reg, m.errors, "discovery metrics"); err != nil {
		return nil, err
	}
	if m.unrouted, err = promreg.Register(reg, m.unrouted, "discovery metrics"); err != nil {
		return nil, err
	}
	for _, t := range countedTypes() {
		m.events.WithLabelValues("docker", t)
	}
	m.errors.WithLabelValues("docker")
	m.unrouted.WithLabelValues("docker")
	return m, nil
}

func (m *Metrics) event(typ string) {
	if m != nil {
		m.events.WithLabelValues("docker", typ).Inc()
	}
}

func (m *Metrics) failed() {
	if m != nil {
		m.errors.WithLabelValues("docker").Inc()
	}
}

func (m *Metrics) setUnrouted(n int) {
	if m != nil {
		m.unrouted.WithLabelValues("docker").Set(float64(n))
	}
}
