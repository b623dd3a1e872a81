package admin

import (
	"cmp"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

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

// The per-backend families, in name order, with their help.
const (
	famBytes         = "tierlb_backend_bytes_total"
	famConnectErrors = "tierlb_backend_connect_errors_total"
	famActive        = "tierlb_backend_connections_active"
	famConns         = "tierlb_backend_connections_total"
	famUp            = "tierlb_backend_up"

	helpBytes         = "Bytes moved through the backend's connections, by direction (to_backend, to_client)."
	helpConnectErrors = "Failed dials to the backend, by reason (timeout, refused, unreachable, other)."
	helpActive        = "Connections open to the backend now."
	helpConns         = "Connections opened to the backend."
	helpUp            = "Whether the backend takes new connections: 1 up, 0 down, draining or maint."
)

// NewCollector returns a collector over the backends of services. Give it
// to the admin server as a Streamer (Options.Streamers).
func NewCollector(services Services) *Collector {
	sb := []string{"service", "backend"}
	return &Collector{
		services:      services,
		conns:         prometheus.NewDesc(famConns, helpConns, sb, nil),
		active:        prometheus.NewDesc(famActive, helpActive, sb, nil),
		connectErrors: prometheus.NewDesc(famConnectErrors, helpConnectErrors, append(sb, "reason"), nil),
		bytes:         prometheus.NewDesc(famBytes, helpBytes, append(sb, "direction"), nil),
		up:            prometheus.NewDesc(famUp, helpUp, sb, nil),
	}
}

// Families names the five families, for Streamer.
func (c *Collector) Families() []string {
	return []string{famBytes, famConnectErrors, famActive, famConns, famUp}
}

// Snapshot reads every backend once; the func writes one family of what it
// read, series in the registry's order: by backend, then reason or
// direction, then service.
func (c *Collector) Snapshot() func(w *FamilyWriter, name string) {
	samples := c.read()
	return func(w *FamilyWriter, name string) {
		switch name {
		case famBytes:
			w.Family(name, helpBytes, dto.MetricType_COUNTER)
			byBackend(samples, func(run []sample) {
				for _, s := range run {
					w.Sample(float64(s.toBackend), "backend", s.backend, "direction", "to_backend", "service", s.service)
				}
				for _, s := range run {
					w.Sample(float64(s.toClient), "backend", s.backend, "direction", "to_client", "service", s.service)
				}
			})
		case famConnectErrors:
			w.Family(name, helpConnectErrors, dto.MetricType_COUNTER)
			byBackend(samples, func(run []sample) {
				for _, i := range reasonOrder {
					for _, s := range run {
						w.Sample(float64(s.errs[i]), "backend", s.backend, "reason", backends.DialErrorReasons[i], "service", s.service)
					}
				}
			})
		case famActive:
			w.Family(name, helpActive, dto.MetricType_GAUGE)
			for _, s := range samples {
				w.Sample(float64(s.active), "backend", s.backend, "service", s.service)
			}
		case famConns:
			w.Family(name, helpConns, dto.MetricType_COUNTER)
			for _, s := range samples {
				w.Sample(float64(s.total), "backend", s.backend, "service", s.service)
			}
		case famUp:
			w.Family(name, helpUp, dto.MetricType_GAUGE)
			for _, s := range samples {
				w.Sample(s.upValue(), "backend", s.backend, "service", s.service)
			}
		}
	}
}

// byBackend calls fn with each run of samples sharing a backend name (the
// same container name in several services), in order.
func byBackend(samples []sample, fn func(run []sample)) {
	for i := 0; i < len(samples); {
		j := i + 1
		for j < len(samples) && samples[j].backend == samples[i].backend {
			j++
		}
		fn(samples[i:j])
		i = j
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
	for _, s := range c.read() {
		c.send(ch, &s)
	}
}

// read samples every backend once, sorted by backend, then service, in
// one slice: a scrape of 200 backends made an object per backend and a
// map of them.
func (c *Collector) read() []sample {
	infos := list(c.services)
	sets := make([][]*backends.Backend, len(infos))
	n := 0
	for i, info := range infos {
		if info.Set != nil {
			sets[i] = info.Set.Backends()
			n += len(sets[i])
		}
	}
	samples := make([]sample, 0, n)
	for i, info := range infos {
		for _, b := range sets[i] {
			s := sample{service: info.Name, backend: b.ID()}
			s.add(b)
			samples = append(samples, s)
		}
	}
	// The registry sorts each family's series by their label values, in
	// label-name order: backend, then reason or direction, then service.
	// Sent in that order already, the sort of a 10,000-backend scrape
	// costs a pass instead of a tenth of the scrape.
	slices.SortFunc(samples, func(a, b sample) int {
		return cmp.Or(strings.Compare(a.backend, b.backend), strings.Compare(a.service, b.service))
	})
	// Sorted, the backends sharing an ID within a service are neighbours.
	out := samples[:0]
	for _, s := range samples {
		if k := len(out) - 1; k >= 0 && out[k].backend == s.backend && out[k].service == s.service {
			out[k].merge(s)
			continue
		}
		out = append(out, s)
	}
	return out
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

// merge adds o's counts to s: the same backend ID twice in a service.
func (s *sample) merge(o sample) {
	s.total += o.total
	s.active += o.active
	for i, n := range o.errs {
		s.errs[i] += n
	}
	s.toBackend += o.toBackend
	s.toClient += o.toClient
	s.up = s.up || o.up
}

func (s *sample) upValue() float64 {
	if s.up {
		return 1
	}
	return 0
}

func (c *Collector) send(ch chan<- prometheus.Metric, s *sample) {
	metric(ch, c.conns, prometheus.CounterValue, float64(s.total), s.service, s.backend)
	metric(ch, c.active, prometheus.GaugeValue, float64(s.active), s.service, s.backend)
	for _, i := range reasonOrder {
		metric(ch, c.connectErrors, prometheus.CounterValue, float64(s.errs[i]), s.service, s.backend, backends.DialErrorReasons[i])
	}
	metric(ch, c.bytes, prometheus.CounterValue, float64(s.toBackend), s.service, s.backend, "to_backend")
	metric(ch, c.bytes, prometheus.CounterValue, float64(s.toClient), s.service, s.backend, "to_client")
	metric(ch, c.up, prometheus.GaugeValue, s.upValue(), s.service, s.backend)
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
