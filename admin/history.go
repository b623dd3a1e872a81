package admin

import (
	"context"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/tierlb/tierlb/backends"
)

// The history every service and backend keeps for the status page: one
// sample of its rates every HistoryInterval, the last HistorySlots of them
// (15 minutes). The bound is per series, and a series goes with its
// backend or service.
const (
	HistoryInterval = 10 * time.Second
	HistorySlots    = 90
)

// The four rates a series tracks, in the order of counters and of a slot.
const (
	rateConns = iota
	rateToBackend
	rateToClient
	rateErrors
	numRates
)

// counters are the running totals a sample reads: connections opened, bytes
// each way, failed dials.
type counters [numRates]uint64

// slot is one sample's rates as bfloat16, the upper half of a float32: two
// to three significant digits, which is all a 24-pixel sparkline shows, at
// half the memory of float32.
type slot [numRates]uint16

// rateSeries is the history of one service or backend.
type rateSeries struct {
	cur  counters          // summed over the backends of one ID during a sample
	last counters          // at the previous sample
	born uint64            // the sample that first saw it
	seen uint64            // the latest sample that saw it
	rate [numRates]float64 // over the latest interval
	// ring holds the rates of sample k at k % HistorySlots. It is allocated
	// at the first sample with anything to show and dropped after a whole
	// window of zeros, so the idle backends of a large setup cost no ring.
	ring  *[HistorySlots]slot
	quiet int // consecutive samples whose rates were all zero
}

type backendKey struct{ service, id string }

// History samples the counters of every service and backend once per
// HistoryInterval and keeps their recent rates. Its methods are safe for
// concurrent use; Run (or a test calling sample) is the only writer.
type History struct {
	services   Services
	rejections Rejections
	log        *slog.Logger

	mu        sync.RWMutex
	n         uint64    // samples taken; the first is the baseline
	at        time.Time // of the latest sample
	window    time.Duration
	byService map[string]*rateSeries
	rejected  map[string]uint64          // per service, at the latest sample
	byBackend map[backendKey]*rateSeries // backends that have counted something
	// A backend that has counted nothing yet is quiet: its series would
	// be every rate zero and no ring, so it has none. Most backends of a
	// large setup serve no connection for long stretches; what stands for
	// their series is listed, the IDs of each service at the latest
	// sample, sorted (16 B a backend), and young, the sample that first
	// saw a quiet backend, only while that still shows in its trend: for
	// one that joined after the baseline, less than a window ago.
	listed map[string][]string
	young  map[backendKey]uint64
}

// Rejections adds to out, per service name, the connections the service
// refused (tierlb_connections_rejected_total) and the datagrams it dropped
// (tierlb_udp_dropped_total) since it started, every reason: the data
// path's counters read directly, as a sample must not cost a scrape.
type Rejections func(out map[string]uint64)

// newHistory returns an empty history over services. rejections, when not
// nil, is read at each sample; a service's rejections count as its errors.
func newHistory(services Services, rejections Rejections, log *slog.Logger) *History {
	return &History{
		services: services, rejections: rejections, log: log,
		byService: map[string]*rateSeries{}, rejected: map[string]uint64{}, byBackend: map[backendKey]*rateSeries{},
		listed: map[string][]string{}, young: map[backendKey]uint64{},
	}
}

// Run samples at once (the baseline), then every HistoryInterval until ctx
// is done. Rates exist from the second sample on.
func (h *History) Run(ctx context.Context) error {
	t := time.NewTicker(HistoryInterval)
	defer t.Stop()
	h.sample(time.Now())
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			h.sample(now)
		}
	}
}

// sample reads every counter once and records the rates since the previous
// sample. A backend's delta is its counters' growth, or its whole count
// when the backend is new or its counters went back (a reset, as
// Prometheus's rate() reads one); a service's is the sum of its backends'
// deltas plus its new rejections, so a backend leaving does not read as a
// drop in the service's traffic.
func (h *History) sample(now time.Time) {
	rejected := h.gatherRejections()
	infos := list(h.services)

	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n > 0 && !now.After(h.at) {
		return // a clock that did not move gives no rate
	}
	dt := now.Sub(h.at).Seconds()
	h.n++
	baseline := h.n == 1
	h.window = now.Sub(h.at)
	h.at = now

	prev := h.listed
	h.listed = make(map[string][]string, len(infos))
	for _, info := range infos {
		svc := touch(h.byService, info.Name, h.n)
		svc.seen, svc.cur = h.n, counters{}
		if info.Set == nil {
			continue
		}
		var ids []string
		for _, b := range info.Set.Backends() {
			k := backendKey{info.Name, b.ID()}
			// Backends come sorted by ID: one ID's backends are adjacent.
			if n := len(ids); n == 0 || ids[n-1] != k.id {
				ids = append(ids, k.id)
			}
			s := h.byBackend[k]
			if s == nil && quiet(b) {
				if !listed(prev, k) && h.n > 2 {
					h.young[k] = h.n
				}
				continue
			}
			if s == nil {
				s = touch(h.byBackend, k, h.n)
				if listed(prev, k) {
					// It was quiet at the previous sample: its counters
					// were zero, as a series kept all along would have
					// read them.
					s.born = h.young[k]
					delete(h.young, k)
				}
			}
			if s.seen != h.n {
				s.seen, s.cur = h.n, counters{}
			}
			addCounters(&s.cur, b)
		}
		h.listed[info.Name] = slices.Clip(ids)
	}
	// A trend starts at max(born, 2) or at the window's oldest sample,
	// whichever is later: a born at or before the oldest shows as none.
	oldest := int64(h.n) - HistorySlots + 1
	for k, born := range h.young {
		if int64(born) <= oldest || !listed(h.listed, k) {
			delete(h.young, k)
		}
	}
	for k, s := range h.byBackend {
		if s.seen != h.n {
			delete(h.byBackend, k)
			continue
		}
		d := s.advance(h.n)
		if svc := h.byService[k.service]; svc != nil {
			for i := range d {
				svc.cur[i] += d[i]
			}
		}
		if !baseline {
			s.record(h.n, d, dt)
		}
	}
	for name, s := range h.byService {
		if s.seen != h.n {
			delete(h.byService, name)
			delete(h.rejected, name)
			continue
		}
		r, last := rejected[name], h.rejected[name]
		if s.born == h.n || r < last {
			last = 0
		}
		h.rejected[name] = r
		s.cur[rateErrors] += r - last
		if !baseline {
			s.record(h.n, s.cur, dt)
		}
	}
}

// quiet says whether backend b has counted nothing so far. Its rates are
// zero, so its share of its service's is nothing.
func quiet(b *backends.Backend) bool {
	var c counters
	addCounters(&c, b)
	return c == counters{}
}

// listed reports whether k's backend was in the listing ids.
func listed(ids map[string][]string, k backendKey) bool {
	_, ok := slices.BinarySearch(ids[k.service], k.id)
	return ok
}

// touch returns m's series for k, creating it as born in sample n.
func touch[K comparable](m map[K]*rateSeries, k K, n uint64) *rateSeries {
	s := m[k]
	if s == nil {
		s = &rateSeries{born: n}
		m[k] = s
	}
	return s
}

func addCounters(c *counters, b *backends.Backend) {
	toBackend, toClient := b.Bytes()
	c[rateConns] += b.Total()
	c[rateToBackend] += toBackend
	c[rateToClient] += toClient
	for _, n := range b.ConnectErrors() {
		c[rateErrors] += n
	}
}

// advance returns the growth of a backend's counters since the previous
// sample and keeps the new values.
func (s *rateSeries) advance(n uint64) counters {
	var d counters
	for i := range d {
		if s.born == n || s.cur[i] < s.last[i] {
			d[i] = s.cur[i]
		} else {
			d[i] = s.cur[i] - s.last[i]
		}
	}
	s.last = s.cur
	return d
}

// record keeps the rates of sample n: deltas d over dt seconds.
func (s *rateSeries) record(n uint64, d counters, dt float64) {
	var sl slot
	idle := true
	for i, v := range d {
		r := float64(v) / dt
		s.rate[i], sl[i] = r, toBFloat16(float32(r))
		idle = idle && v == 0
	}
	if idle {
		s.quiet++
		if s.quiet >= HistorySlots {
			s.ring = nil
		}
	} else {
		s.quiet = 0
		if s.ring == nil {
			s.ring = new([HistorySlots]slot)
		}
	}
	if s.ring != nil {
		s.ring[n%HistorySlots] = sl
	}
}

// gatherRejections sums the refused connections and dropped datagrams of
// each service.
func (h *History) gatherRejections() map[string]uint64 {
	out := map[string]uint64{}
	if h.rejections != nil {
		h.rejections(out)
	}
	return out
}

// toBFloat16 rounds f to the nearest bfloat16 (ties to even). Rates are
// finite and not negative, so NaN needs no care.
func toBFloat16(f float32) uint16 {
	b := math.Float32bits(f)
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

func fromBFloat16(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }
