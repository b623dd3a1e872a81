package portcap

import (
	"context"
	"log/slog"
	"time"
)

// Sample is one backend's connection total at one moment.
type Sample struct {
	Service, Backend, Address string
	// Total is the number of connections ever opened to the backend.
	Total uint64
}

// Warner logs a warning when a backend's rate of new connections comes near
// what the namespace allows it (Settings.ForAddress). It reads totals the
// data path keeps anyway, once a window, so it costs the data path nothing.
type Warner struct {
	Settings Settings
	Log      *slog.Logger
	// Share of the capacity above which a backend is warned about; 0 means
	// 0.8.
	Share float64
	// Window is how often totals are sampled, so the span a rate is taken
	// over; 0 means 10 s.
	Window time.Duration
	// Every is the least time between two warnings about one backend; 0
	// means a minute.
	Every time.Duration

	// seen tracks the backends that have opened a connection. One that
	// has not is at zero since the previous sample, so it needs no state:
	// most backends of a large setup are idle, and a track costs more than
	// a hundred bytes.
	seen map[sampleKey]*track
	last time.Time // of the previous Observe
	gen  uint64    // Observe calls, to find the backends no longer sampled
}

type sampleKey struct{ service, backend, address string }

type track struct {
	at       time.Time
	total    uint64
	over     bool
	warnedAt time.Time
	gen      uint64 // of the latest Observe that sampled it
}

func (w *Warner) share() float64 {
	if w.Share <= 0 {
		return 0.8
	}
	return w.Share
}

func (w *Warner) window() time.Duration {
	if w.Window <= 0 {
		return 10 * time.Second
	}
	return w.Window
}

func (w *Warner) every() time.Duration {
	if w.Every <= 0 {
		return time.Minute
	}
	return w.Every
}

// Run samples every Window until ctx is done.
func (w *Warner) Run(ctx context.Context, sample func() []Sample) error {
	t := time.NewTicker(w.window())
	defer t.Stop()
	w.Observe(time.Now(), sample())
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case now := <-t.C:
			w.Observe(now, sample())
		}
	}
}

// Observe takes the totals at now. A backend over its share is warned about
// at most once every Every, however often it crosses; it is logged at info
// when it falls back under. Backends no longer sampled are forgotten.
//
// A backend first seen with connections is taken to have had none at the
// previous sample: it opened them within the window (or it is the first
// sample, whose totals are only a baseline), so its rate over the window
// is at most its real one and never warns falsely.
func (w *Warner) Observe(now time.Time, samples []Sample) {
	if w.seen == nil {
		w.seen = make(map[sampleKey]*track)
	}
	baseline, prev := w.gen == 0, w.last
	w.gen++
	w.last = now
	for _, s := range samples {
		k := sampleKey{s.Service, s.Backend, s.Address}
		tr, ok := w.seen[k]
		if !ok {
			if s.Total == 0 {
				continue
			}
			tr = &track{at: prev}
			if baseline {
				tr.at, tr.total = now, s.Total
			}
			w.seen[k] = tr
		}
		tr.gen = w.gen
		elapsed := now.Sub(tr.at).Seconds()
		if elapsed <= 0 || s.Total < tr.total {
			tr.at, tr.total = now, s.Total
			continue
		}
		rate := float64(s.Total-tr.total) / elapsed
		tr.at, tr.total = now, s.Total
		capacity := w.Settings.ForAddress(s.Address)
		switch {
		case rate > w.share()*capacity:
			if tr.warnedAt.IsZero() || now.Sub(tr.warnedAt) >= w.every() {
				w.log().Warn("backend near the local port capacity: new connections will fail with EADDRNOTAVAIL if clients close first at this rate",
					"service", s.Service, "backend", s.Backend, "address", s.Address,
					"rate_per_second", int(rate), "capacity_per_second", int(capacity))
				tr.warnedAt = now
			}
			tr.over = true
		case tr.over:
			w.log().Info("backend back under its local port capacity",
				"service", s.Service, "backend", s.Backend, "address", s.Address,
				"rate_per_second", int(rate), "capacity_per_second", int(capacity))
			tr.over = false
		}
	}
	for k, tr := range w.seen {
		if tr.gen != w.gen {
			delete(w.seen, k)
		}
	}
}

func (w *Warner) log() *slog.Logger {
	if w.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return w.Log
}
