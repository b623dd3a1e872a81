//go:build linux

package udp

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tierlb/tierlb/backends"
	"github.com/tierlb/tierlb/internal/promreg"
	"github.com/tierlb/tierlb/internal/promtext"
)

// Drop reasons, the values of the reason label of tierlb_udp_dropped_total.
const (
	DropMaxSessions = "max_sessions"
	DropNoBackend   = "no_backend"
	DropSendError   = "send_error"
	DropNotAllowed  = "not_allowed"
	DropDraining    = "draining"
	DropLateReply   = "late_reply"
)

type dropReason uint8

const (
	dropMaxSessions dropReason = iota
	dropNoBackend
	dropSendError
	dropNotAllowed
	dropDraining
	dropLateReply
	numDropReasons
)

// dropReasons lists every reason, indexed by dropReason and exported at
// zero for each service.
var dropReasons = [numDropReasons]string{DropMaxSessions, DropNoBackend, DropSendError, DropNotAllowed, DropDraining, DropLateReply}

// Metrics are the UDP series of every UDP service of a process. The
// per-backend ones are read at scrape time from counters the loops bump
// with atomic adds, so that a backend's series exist (at zero) as soon as
// the backend does and vanish with it, as tierlb_backend_* do; bytes go to
// the backends' own counters, which tierlb_backend_bytes_total exports.
// One Metrics survives reloads; a nil *Metrics records nothing.
//
// The drop counters are atomics in each service's serviceMetrics too, read
// at scrape time: a Prometheus child per series costs kilobytes a service.
type Metrics struct {
	dropped, active, total, datagrams *prometheus.Desc

	mu       sync.Mutex
	services []*Service                 // running or draining, in start order
	drops    map[string]*serviceMetrics // by service name
}

// The UDP families, in name order, with their help.
const (
	famDatagrams = "tierlb_udp_datagrams_total"
	famDropped   = "tierlb_udp_dropped_total"
	famActive    = "tierlb_udp_sessions_active"
	famTotal     = "tierlb_udp_sessions_total"

	helpDatagrams = "Datagrams proxied through the backend's sessions, by direction (to_backend, to_client)."
	helpDropped   = "Client datagrams dropped by a UDP service, by reason."
	helpActive    = "UDP sessions open to the backend now."
	helpTotal     = "UDP sessions started on the backend (a session moved to it counts)."
)

// NewMetrics creates the UDP metrics and registers them on reg, unless
// reg is nil: give them to the admin server as a Streamer instead, and
// its text scrapes write them without gathering. A second call with the
// same registry returns the Metrics already registered, so a reload does
// not fail.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	sb := []string{"service", "backend"}
	m := &Metrics{
		dropped:   prometheus.NewDesc(famDropped, helpDropped, []string{"service", "reason"}, nil),
		active:    prometheus.NewDesc(famActive, helpActive, sb, nil),
		total:     prometheus.NewDesc(famTotal, helpTotal, sb, nil),
		datagrams: prometheus.NewDesc(famDatagrams, helpDatagrams, append(sb, "direction"), nil),
		drops:     map[string]*serviceMetrics{},
	}
	if reg == nil {
		return m, nil
	}
	return promreg.Register(reg, m, "UDP metrics")
}

// Describe sends the descriptors of every UDP series.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.dropped
	ch <- m.active
	ch <- m.total
	ch <- m.datagrams
}

// Collect sends the drop counters and every service's backends.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	drops, samples := m.read()
	for _, sm := range drops {
		for i, r := range dropReasons {
			metric(ch, m.dropped, prometheus.CounterValue, float64(sm.dropped[i].Load()), sm.name, r)
		}
	}
	for _, b := range samples {
		metric(ch, m.active, prometheus.GaugeValue, float64(b.active), b.service, b.backend)
		metric(ch, m.total, prometheus.CounterValue, float64(b.total), b.service, b.backend)
		metric(ch, m.datagrams, prometheus.CounterValue, float64(b.toBackend), b.service, b.backend, "to_backend")
		metric(ch, m.datagrams, prometheus.CounterValue, float64(b.toClient), b.service, b.backend, "to_client")
	}
}

// Families names the four families, for admin.Streamer.
func (m *Metrics) Families() []string {
	return []string{famDatagrams, famDropped, famActive, famTotal}
}

// Snapshot reads every service's backends once; the func writes one family
// of what it read, series in the registry's order: by label values in
// label-name order (backend, direction, reason, service). For
// admin.Streamer.
func (m *Metrics) Snapshot() func(w *promtext.FamilyWriter, name string) {
	drops, samples := m.read()
	return func(w *promtext.FamilyWriter, name string) {
		switch name {
		case famDatagrams:
			w.Family(name, helpDatagrams, dto.MetricType_COUNTER)
			for i := 0; i < len(samples); {
				j := i + 1
				for j < len(samples) && samples[j].backend == samples[i].backend {
					j++
				}
				for _, b := range samples[i:j] {
					w.Sample(float64(b.toBackend), "backend", b.backend, "direction", "to_backend", "service", b.service)
				}
				for _, b := range samples[i:j] {
					w.Sample(float64(b.toClient), "backend", b.backend, "direction", "to_client", "service", b.service)
				}
				i = j
			}
		case famDropped:
			w.Family(name, helpDropped, dto.MetricType_COUNTER)
			for _, r := range dropOrder {
				for _, sm := range drops {
					w.Sample(float64(sm.dropped[r].Load()), "reason", dropReasons[r], "service", sm.name)
				}
			}
		case famActive:
			w.Family(name, helpActive, dto.MetricType_GAUGE)
			for _, b := range samples {
				w.Sample(float64(b.active), "backend", b.backend, "service", b.service)
			}
		case famTotal:
			w.Family(name, helpTotal, dto.MetricType_COUNTER)
			for _, b := range samples {
				w.Sample(float64(b.total), "backend", b.backend, "service", b.service)
			}
		}
	}
}

// dropOrder lists the drop reasons in name order, the order the registry
// sorts their series in.
var dropOrder = func() []dropReason {
	order := make([]dropReason, numDropReasons)
	for i := range order {
		order[i] = dropReason(i)
	}
	slices.SortFunc(order, func(a, b dropReason) int { return strings.Compare(dropReasons[a], dropReasons[b]) })
	return order
}()

// backendSample is one backend's counters within one service.
type backendSample struct {
	service, backend string
	statsSample
}

// read returns the services' drop counters sorted by name and every
// service's backends sorted by backend, then service. Backends that share
// an ID within a service (one container briefly at two addresses, or a
// service draining beside its successor) are summed, because Prometheus
// rejects duplicate label sets.
func (m *Metrics) read() ([]*serviceMetrics, []backendSample) {
	m.mu.Lock()
	services := slices.Clone(m.services)
	drops := make([]*serviceMetrics, 0, len(m.drops))
	for _, sm := range m.drops {
		drops = append(drops, sm)
	}
	m.mu.Unlock()
	slices.SortFunc(drops, func(a, b *serviceMetrics) int { return strings.Compare(a.name, b.name) })
	type key struct{ service, backend string }
	index := map[key]int{}
	var out []backendSample
	for _, s := range services {
		s.stats.each(s.pools.Backends(), func(id string, v statsSample) {
			k := key{s.name, id}
			i, ok := index[k]
			if !ok {
				i = len(out)
				index[k] = i
				out = append(out, backendSample{service: s.name, backend: id})
			}
			out[i].add(v)
		})
	}
	slices.SortFunc(out, func(a, b backendSample) int {
		return cmp.Or(strings.Compare(a.backend, b.backend), strings.Compare(a.service, b.service))
	})
	return drops, out
}

// metric sends one sample; a label value Prometheus refuses becomes an
// invalid metric, which the scrape reports, instead of a panic.
func metric(ch chan<- prometheus.Metric, d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
	sample, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		sample = prometheus.NewInvalidMetric(d, err)
	}
	ch <- sample
}

// serviceMetrics are one service's drop counters, shared by every Service
// of that name so that counts go on across reloads.
type serviceMetrics struct {
	name    string
	dropped [numDropReasons]atomic.Uint64
}

// initService returns a service's drop counters, exported at zero from
// now on.
func (m *Metrics) initService(name string) *serviceMetrics {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	sm := m.drops[name]
	if sm == nil {
		sm = &serviceMetrics{name: name}
		m.drops[name] = sm
	}
	return sm
}

// addService starts reporting s's backends, once it has bound its
// sockets; Shutdown stops it.
func (m *Metrics) addService(s *Service) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.services = append(m.services, s)
	m.mu.Unlock()
}

// removeService stops reporting s's backends, once it has shut down.
func (m *Metrics) removeService(s *Service) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if i := slices.Index(m.services, s); i >= 0 {
		m.services = slices.Delete(m.services, i, i+1)
	}
}

// Dropped adds each service's dropped datagrams, every reason, to out
// (admin.Rejections).
func (m *Metrics) Dropped(out map[string]uint64) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, sm := range m.drops {
		for i := range sm.dropped {
			out[name] += sm.dropped[i].Load()
		}
	}
}

// ForgetService deletes a service's drop counters once it is gone for good
// (removed and drained), so that the series of label-declared services
// that come and go do not pile up.
func (m *Metrics) ForgetService(name string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	delete(m.drops, name)
	m.mu.Unlock()
}

func (sm *serviceMetrics) drop(r dropReason, n int) {
	if sm != nil && n > 0 {
		sm.dropped[r].Add(uint64(n))
	}
}

// backendStats are the UDP counters of one backend within one service.
type backendStats struct {
	active              atomic.Int64
	total               atomic.Uint64
	toBackend, toClient atomic.Uint64 // datagrams
}

type statsSample struct {
	active              int64
	total               uint64
	toBackend, toClient uint64
}

func (v *statsSample) add(o statsSample) {
	v.active += o.active
	v.total += o.total
	v.toBackend += o.toBackend
	v.toClient += o.toClient
}

// statsTable holds a service's backendStats. Loops look a backend's up
// when a session starts on it (under the lock) and then only add.
type statsTable struct {
	mu sync.Mutex
	m  map[*backends.Backend]*backendStats
}

// opened returns b's counters with one more session counted.
func (t *statsTable) opened(b *backends.Backend) *backendStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = make(map[*backends.Backend]*backendStats)
	}
	st := t.m[b]
	if st == nil {
		st = &backendStats{}
		t.m[b] = st
	}
	st.active.Add(1)
	st.total.Add(1)
	return st
}

// each calls fn for every backend of current, at zero if it has no
// counters yet, then for the removed backends that still have sessions.
// Counters of removed backends without sessions are dropped, as their
// tierlb_backend_* series are.
func (t *statsTable) each(current []*backends.Backend, fn func(id string, v statsSample)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	seen := make(map[*backends.Backend]bool, len(current))
	for _, b := range current {
		seen[b] = true
		fn(b.ID(), t.m[b].sample())
	}
	for b, st := range t.m {
		if seen[b] {
			continue
		}
		if st.active.Load() == 0 {
			delete(t.m, b)
			continue
		}
		fn(b.ID(), st.sample())
	}
}

func (st *backendStats) sample() statsSample {
	if st == nil {
		return statsSample{}
	}
	return statsSample{active: st.active.Load(), total: st.total.Load(), toBackend: st.toBackend.Load(), toClient: st.toClient.Load()}
}
