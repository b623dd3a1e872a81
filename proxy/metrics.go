package proxy

import (
	"math"
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

// Rejection reasons, the values of the reason label of
// tierlb_connections_rejected_total.
const (
	RejectMaxConns   = "max_conns"
	RejectNotAllowed = "not_allowed"
	RejectNoBackend  = "no_backend"
	RejectDraining   = "draining"
	// RejectNoSNIRoute: on a shared TLS port, no service takes the
	// ClientHello's server name (or it sent none, or none in time).
	RejectNoSNIRoute = "no_sni_route"
	// RejectNotTLS: on a shared TLS port, the client's first bytes are
	// not a ClientHello tierlb can read.
	RejectNotTLS = "not_tls"
	// RejectLocalError: tierlb itself ran out (descriptors, memory, local
	// ports) dialing the backend; see tierlb_local_errors_total.
	RejectLocalError = "local_error"
	// RejectMaxConnsPerClient: the client address has max_conns_per_client
	// connections open.
	RejectMaxConnsPerClient = "max_conns_per_client"
	// RejectNoClientData: with defer_dial, the client sent nothing within
	// timeouts.first_data.
	RejectNoClientData = "no_client_data"
)

// numRejectReasons is the length of rejectReasons.
const numRejectReasons = 9

// rejectReasons lists every reason, exported at zero for each service.
func rejectReasons() [numRejectReasons]string {
	return [...]string{RejectMaxConns, RejectNotAllowed, RejectNoBackend, RejectDraining, RejectNoSNIRoute,
		RejectNotTLS, RejectLocalError, RejectMaxConnsPerClient, RejectNoClientData}
}

// rejectIndex is reason's index in rejectReasons, or -1.
func rejectIndex(reason string) int {
	switch reason {
	case RejectMaxConns:
		return 0
	case RejectNotAllowed:
		return 1
	case RejectNoBackend:
		return 2
	case RejectDraining:
		return 3
	case RejectNoSNIRoute:
		return 4
	case RejectNotTLS:
		return 5
	case RejectLocalError:
		return 6
	case RejectMaxConnsPerClient:
		return 7
	case RejectNoClientData:
		return 8
	}
	return -1
}

// Histogram buckets. Connect: 100µs to ~10s, a loopback or same-host dial
// is well under a millisecond, a dead backend costs the whole connect
// timeout. Connection: 1ms to 1h, from one request on a fresh connection to
// the default idle timeout.
var (
	connectBuckets = [...]float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	connBuckets    = [...]float64{0.001, 0.005, 0.025, 0.1, 0.5, 1, 5, 30, 120, 600, 3600}
)

// Metrics are the data path's per-service Prometheus series. Per-backend
// series are not here: a collector reads them from the backends' own atomics.
// Likewise a service's series are plain atomics in its serviceMetrics, read
// at scrape time: a Prometheus child per series (16 a service) costs
// several kilobytes a service that hundreds of services notice. One Metrics
// serves every Service of a process and survives reloads; a nil *Metrics
// records nothing.
type Metrics struct {
	accepted, rejected, localErrors *prometheus.Desc
	connectDuration, connDuration   *prometheus.Desc

	mu       sync.Mutex
	services map[string]*serviceMetrics
}

// The data-path families, in name order, with their help.
const (
	famConnectDuration = "tierlb_backend_connect_duration_seconds"
	famConnDuration    = "tierlb_connection_duration_seconds"
	famAccepted        = "tierlb_connections_accepted_total"
	famRejected        = "tierlb_connections_rejected_total"
	famLocalErrors     = "tierlb_local_errors_total"

	helpConnectDuration = "Time to establish a successful backend connection."
	helpConnDuration    = "Lifetime of proxied connections, from accept to close."
	helpAccepted        = "Client connections accepted by a service's listener, refused ones included."
	helpRejected        = "Accepted client connections closed at once, by reason."
	helpLocalErrors     = "Backend dials that failed for want of local resources (descriptors, memory, local ports): tierlb's trouble, never counted against a backend."
)

// NewMetrics creates the data-path metrics and registers them on reg,
// unless reg is nil: give them to the admin server as a Streamer instead,
// and its text scrapes write them without gathering. A second call with
// the same registry returns the Metrics already registered, so a reload
// does not fail.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	svc := []string{"service"}
	m := &Metrics{
		accepted:        prometheus.NewDesc(famAccepted, helpAccepted, svc, nil),
		rejected:        prometheus.NewDesc(famRejected, helpRejected, []string{"service", "reason"}, nil),
		connectDuration: prometheus.NewDesc(famConnectDuration, helpConnectDuration, svc, nil),
		connDuration:    prometheus.NewDesc(famConnDuration, helpConnDuration, svc, nil),
		localErrors:     prometheus.NewDesc(famLocalErrors, helpLocalErrors, []string{"service", "errno"}, nil),
		services:        map[string]*serviceMetrics{},
	}
	if reg == nil {
		return m, nil
	}
	return promreg.Register(reg, m, "data-path metrics")
}

// Describe sends the descriptors of every data-path series.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.accepted
	ch <- m.rejected
	ch <- m.connectDuration
	ch <- m.connDuration
	ch <- m.localErrors
}

// Collect reads every service's counters.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	services := make([]*serviceMetrics, 0, len(m.services))
	for _, sm := range m.services {
		services = append(services, sm)
	}
	m.mu.Unlock()
	var buf [len(connectBuckets) + 1]uint64
	for _, sm := range services {
		counter(ch, m.accepted, sm.accepted.Load(), sm.name)
		for i, r := range rejectReasons() {
			counter(ch, m.rejected, sm.rejected[i].Load(), sm.name, r)
		}
		for i, e := range backends.LocalDialErrors {
			counter(ch, m.localErrors, sm.localErrors[i].Load(), sm.name, e)
		}
		sm.connectDuration.collect(ch, m.connectDuration, connectBuckets[:], buf[:], sm.name)
		sm.connDuration.collect(ch, m.connDuration, connBuckets[:], buf[:], sm.name)
	}
}

// Families names the five families, for admin.Streamer.
func (m *Metrics) Families() []string {
	return []string{famConnectDuration, famConnDuration, famAccepted, famRejected, famLocalErrors}
}

// Snapshot takes the services of one scrape; the func writes one family of
// theirs, series in the registry's order: by label values in label-name
// order, so errno or reason before service. For admin.Streamer.
func (m *Metrics) Snapshot() func(w *promtext.FamilyWriter, name string) {
	m.mu.Lock()
	services := make([]*serviceMetrics, 0, len(m.services))
	for _, sm := range m.services {
		services = append(services, sm)
	}
	m.mu.Unlock()
	slices.SortFunc(services, func(a, b *serviceMetrics) int { return strings.Compare(a.name, b.name) })
	var buf [len(connectBuckets) + 1]uint64
	return func(w *promtext.FamilyWriter, name string) {
		switch name {
		case famConnectDuration:
			w.Family(name, helpConnectDuration, dto.MetricType_HISTOGRAM)
			for _, sm := range services {
				sm.connectDuration.write(w, connectBuckets[:], buf[:], "service", sm.name)
			}
		case famConnDuration:
			w.Family(name, helpConnDuration, dto.MetricType_HISTOGRAM)
			for _, sm := range services {
				sm.connDuration.write(w, connBuckets[:], buf[:], "service", sm.name)
			}
		case famAccepted:
			w.Family(name, helpAccepted, dto.MetricType_COUNTER)
			for _, sm := range services {
				w.Sample(float64(sm.accepted.Load()), "service", sm.name)
			}
		case famRejected:
			w.Family(name, helpRejected, dto.MetricType_COUNTER)
			reasons := rejectReasons()
			for _, i := range rejectOrder {
				for _, sm := range services {
					w.Sample(float64(sm.rejected[i].Load()), "reason", reasons[i], "service", sm.name)
				}
			}
		case famLocalErrors:
			w.Family(name, helpLocalErrors, dto.MetricType_COUNTER)
			for _, i := range errnoOrder {
				for _, sm := range services {
					w.Sample(float64(sm.localErrors[i].Load()), "errno", backends.LocalDialErrors[i], "service", sm.name)
				}
			}
		}
	}
}

// rejectOrder and errnoOrder are the indexes of rejectReasons and
// backends.LocalDialErrors in name order, the order the registry sorts
// their series in.
var (
	rejectOrder = func() []int { r := rejectReasons(); return nameOrder(r[:]) }()
	errnoOrder  = nameOrder(backends.LocalDialErrors[:])
)

func nameOrder(names []string) []int {
	idx := make([]int, len(names))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return strings.Compare(names[a], names[b]) })
	return idx
}

// Rejected adds each service's refused connections, every reason, to out
// (admin.Rejections).
func (m *Metrics) Rejected(out map[string]uint64) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, sm := range m.services {
		for i := range sm.rejected {
			out[name] += sm.rejected[i].Load()
		}
	}
}

// counter sends one counter sample; a label value Prometheus refuses
// becomes an invalid metric, which the scrape reports, instead of a panic.
func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v uint64, labels ...string) {
	sample, err := prometheus.NewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	if err != nil {
		sample = prometheus.NewInvalidMetric(d, err)
	}
	ch <- sample
}

// serviceMetrics are one service's series. Every Service of that name (a
// reloaded one, or one draining beside its successor) shares them, so
// counts go on across reloads. A nil *serviceMetrics records nothing.
type serviceMetrics struct {
	name            string
	accepted        atomic.Uint64
	rejected        [numRejectReasons]atomic.Uint64
	localErrors     [len(backends.LocalDialErrors)]atomic.Uint64
	connectDuration histogram
	connDuration    histogram
}

// initService returns the service's series, creating them (every
// rejection reason at zero, so rates and alerts work before the first
// refusal) unless a Service of that name already has them.
func (m *Metrics) initService(name string) *serviceMetrics {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	sm := m.services[name]
	if sm == nil {
		sm = &serviceMetrics{name: name}
		m.services[name] = sm
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
	m.mu.Lock()
	delete(m.services, name)
	m.mu.Unlock()
}

func (sm *serviceMetrics) connAccepted() {
	if sm != nil {
		sm.accepted.Add(1)
	}
}

func (sm *serviceMetrics) connRejected(reason string) {
	if sm == nil {
		return
	}
	if i := rejectIndex(reason); i >= 0 {
		sm.rejected[i].Add(1)
	}
}

func (sm *serviceMetrics) dialed(seconds float64) {
	if sm != nil {
		sm.connectDuration.observe(connectBuckets[:], seconds)
	}
}

func (sm *serviceMetrics) connClosed(seconds float64) {
	if sm != nil {
		sm.connDuration.observe(connBuckets[:], seconds)
	}
}

func (sm *serviceMetrics) localError(i int) {
	if sm != nil {
		sm.localErrors[i].Add(1)
	}
}

// histogram is a Prometheus histogram as plain atomics: a count per bucket
// (the one after the last bound for values above every bound) and the sum.
// The total count is the buckets' sum, so a scrape never sees more in a
// bucket than in the whole. It has room for the longer bucket list.
type histogram struct {
	counts  [len(connectBuckets) + 1]atomic.Uint64
	sumBits atomic.Uint64 // float64 bits
}

// observe counts v in the first bucket whose upper bound is at least v,
// as prometheus.Histogram does.
func (h *histogram) observe(bounds []float64, v float64) {
	i := 0
	for i < len(bounds) && v > bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	for {
		old := h.sumBits.Load()
		if h.sumBits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// read loads the bucket counts into buf (at least len(bounds)+1) made
// cumulative, and returns the total count and the sum.
func (h *histogram) read(bounds []float64, buf []uint64) (cumulative []uint64, count uint64, sum float64) {
	buf = buf[:len(bounds)+1]
	for i := range buf {
		buf[i] = h.counts[i].Load()
	}
	sum = math.Float64frombits(h.sumBits.Load())
	for i := range buf {
		count += buf[i]
		buf[i] = count
	}
	return buf[:len(bounds)], count, sum
}

// write writes the histogram as one series of w's family.
func (h *histogram) write(w *promtext.FamilyWriter, bounds []float64, buf []uint64, labels ...string) {
	cumulative, count, sum := h.read(bounds, buf)
	w.Histogram(bounds, cumulative, count, sum, labels...)
}

// collect sends the histogram with cumulative bucket counts; buf holds at
// least len(bounds)+1 counts.
func (h *histogram) collect(ch chan<- prometheus.Metric, d *prometheus.Desc, bounds []float64, buf []uint64, labels ...string) {
	cumulative, count, sum := h.read(bounds, buf)
	buckets := make(map[float64]uint64, len(bounds))
	for i, ub := range bounds {
		buckets[ub] = cumulative[i]
	}
	sample, err := prometheus.NewConstHistogram(d, count, sum, buckets, labels...)
	if err != nil {
		sample = prometheus.NewInvalidMetric(d, err)
	}
	ch <- sample
}
