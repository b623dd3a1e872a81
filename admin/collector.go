package admin

import (
	"cmp"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tierlb/tierlb/backends"
)

// Collector exports the per-backend metrics from the Backend atomics at
// scrape time. The data path only bumps its own atomics; nothing per
// connection touches Prometheus, and a removed backend's series vanish with
// it because they are rebuilt on every scrape.
type Collector struct {
	services Services

	conns, active, connectErrors, bytes, up *prometheus.Desc
}

// NewCollector returns a collector over the backends of services. Register it
// on the registry cmd/ serves.
func NewCollector(services Services) *Collector {
	sb := []string{"service", "backend"}
	return &Collector{
		services: services,
		conns: prometheus.NewDesc("tierlb_backend_connections_total",
			"Connections opened to the backend.", sb, nil),
		active: prometheus.NewDesc("tierlb_backend_connections_active",
			"Connections open to the backend now.", sb, nil),
		connectErrors: prometheus.NewDesc("tierlb_backend_connect_errors_total",
			"Failed dials to the backend, by reason (timeout, refused, unreachable, other).",
			append(sb, "reason"), nil),
		bytes: prometheus.NewDesc("tierlb_backend_bytes_total",
			"Bytes moved through the backend's connections, by direction (to_backend, to_client).",
			append(sb, "direction"), nil),
		up: prometheus.NewDesc("tierlb_backend_up",
			"Whether the backend takes new connections: 1 up, 0 down, draining or maint.", sb, nil),
	}
}

// Describe sends the five metric descriptors.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.conns, c.active, c.connectErrors, c.bytes, c.up} {
		ch <- d
	}
}

// sample is one (service, backend) series set. Backends sharing an ID within
// a service (a provider briefly listing the same container at two addresses)
// are summed, because Prometheus rejects duplicate label sets.
type sample struct {
	service, backend    string
	total               uint64
	active              int64
	errs                [len(backends.DialErrorReasons)]uint64
	toBackend, toClient uint64
	up                  bool
}

// Collect reads every backend once and sends its series.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	var samples []*sample
	index := map[[2]string]*sample{}
	for _, info := range list(c.services) {
		if info.Set == nil {
			continue
		}
		for _, b := range info.Set.Backends() {
			key := [2]string{info.Name, b.ID()}
			s := index[key]
			if s == nil {
				s = &sample{service: key[0], backend: key[1]}
				index[key] = s
				samples = append(samples, s)
			}
			s.add(b)
		}
	}
	// The registry sorts each family's series by their label values, in
	// label-name order: backend, then reason or direction, then service.
	// Sent in that order already, the sort of a 10,000-backend scrape
	// costs a pass instead of a tenth of the scrape.
	slices.SortFunc(samples, func(a, b *sample) int {
		return cmp.Or(strings.Compare(a.backend, b.backend), strings.Compare(a.service, b.service))
	})
	for _, s := range samples {
		c.send(ch, s)
	}
}

// reasonOrder lists the indexes of backends.DialErrorReasons by name, the
// order the registry sorts them in.
var reasonOrder = func() []int {
	idx := make([]int, len(backends.DialErrorReasons))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		return strings.Compare(backends.DialErrorReasons[a], backends.DialErrorReasons[b])
	})
	return idx
}()

func (s *sample) add(b *backends.Backend) {
	s.total += b.Total()
	s.active += b.Active()
	for i, n := range b.ConnectErrors() {
		s.errs[i] += n
	}
	toBackend, toClient := b.Bytes()
	s.toBackend += toBackend
	s.toClient += toClient
	if st, _ := b.State(); st == backends.StateUp {
		s.up = true
	}
}

func (c *Collector) send(ch chan<- prometheus.Metric, s *sample) {
	metric(ch, c.conns, prometheus.CounterValue, float64(s.total), s.service, s.backend)
	metric(ch, c.active, prometheus.GaugeValue, float64(s.active), s.service, s.backend)
	for _, i := range reasonOrder {
		metric(ch, c.connectErrors, prometheus.CounterValue, float64(s.errs[i]), s.service, s.backend, backends.DialErrorReasons[i])
	}
	metric(ch, c.bytes, prometheus.CounterValue, float64(s.toBackend), s.service, s.backend, "to_backend")
	metric(ch, c.bytes, prometheus.CounterValue, float64(s.toClient), s.service, s.backend, "to_client")
	up := 0.0
	if s.up {
		up = 1
	}
	metric(ch, c.up, prometheus.GaugeValue, up, s.service, s.backend)
}

// metric sends one sample. A label value Prometheus refuses (invalid UTF-8 in
// a static backend's name) becomes an invalid metric, which the scrape
// reports as an error instead of this process panicking.
func metric(ch chan<- prometheus.Metric, d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
	m, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	ch <- m
}
