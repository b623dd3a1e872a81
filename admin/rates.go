package admin

import "time"

// Rates are a service's or backend's rates over the latest history
// interval, in the API and on the status page.
type Rates struct {
	// ConnsPerS counts connections (a UDP service's sessions) opened to
	// backends per second.
	ConnsPerS float64   `json:"conns_per_s"`
	BytesPerS ByteRates `json:"bytes_per_s"`
	// ErrorsPerS counts failed dials per second and, for a service, the
	// connections it refused and the datagrams it dropped.
	ErrorsPerS float64 `json:"errors_per_s"`
	// WindowS is the length of the interval the rates were measured over,
	// in seconds (about 10).
	WindowS float64 `json:"window_s"`
}

// ByteRates are bytes per second each way.
type ByteRates struct {
	ToBackend float64 `json:"to_backend"`
	ToClient  float64 `json:"to_client"`
}

// trend is the last HistorySlots samples of a series, oldest first: point
// i is from HistoryInterval*(HistorySlots-1-i) before the latest sample.
// Points before first have no data (the series or tierlb did not exist).
type trend struct {
	points [HistorySlots][numRates]float32
	first  int
}

// serviceRates returns the service's rates, nil before the second sample.
func (h *History) serviceRates(service string) *Rates {
	if h == nil {
		return nil
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.ratesLocked(h.byService[service])
}

// backendRates returns the backend's rates, nil before the second sample.
func (h *History) backendRates(service, id string) *Rates {
	if h == nil {
		return nil
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	var quiet rateSeries
	return h.ratesLocked(h.backendLocked(backendKey{service, id}, &quiet))
}

// backendLocked returns the backend's series; for one that has counted
// nothing yet, quiet, filled in as the series it stands for.
func (h *History) backendLocked(k backendKey, quiet *rateSeries) *rateSeries {
	if s := h.byBackend[k]; s != nil {
		return s
	}
	if listed(h.listed, k) {
		*quiet = rateSeries{born: h.young[k]}
		return quiet
	}
	return nil
}

func (h *History) ratesLocked(s *rateSeries) *Rates {
	if s == nil || h.n < 2 {
		return nil
	}
	return &Rates{
		ConnsPerS:  s.rate[rateConns],
		BytesPerS:  ByteRates{ToBackend: s.rate[rateToBackend], ToClient: s.rate[rateToClient]},
		ErrorsPerS: s.rate[rateErrors],
		WindowS:    h.window.Round(time.Millisecond).Seconds(),
	}
}

// serviceTrend and backendTrend return a series' trend; false when it has
// no rates yet.
func (h *History) serviceTrend(service string) (trend, bool) {
	if h == nil {
		return trend{}, false
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.trendLocked(h.byService[service])
}

func (h *History) backendTrend(service, id string) (trend, bool) {
	if h == nil {
		return trend{}, false
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	var quiet rateSeries
	return h.trendLocked(h.backendLocked(backendKey{service, id}, &quiet))
}

func (h *History) trendLocked(s *rateSeries) (trend, bool) {
	var t trend
	if s == nil || h.n < 2 {
		return t, false
	}
	// Sample k sits at point k - oldest; the first sample with a rate is
	// the later of the second sample (the first is the baseline) and the
	// series' first.
	oldest := int64(h.n) - HistorySlots + 1
	valid := max(int64(s.born), 2)
	t.first = int(max(valid-oldest, 0))
	if s.ring == nil {
		return t, true
	}
	for i := t.first; i < HistorySlots; i++ {
		sl := s.ring[uint64(oldest+int64(i))%HistorySlots]
		for j, v := range sl {
			t.points[i][j] = fromBFloat16(v)
		}
	}
	return t, true
}
