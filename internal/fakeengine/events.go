package fakeengine

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moby/moby/api/types/events"
)

// The daemon's event bus: it keeps its last 256 events for since/until
// replays, and gives each subscriber a 1,024-event buffer and 100ms to make
// room before it drops an event for that subscriber.
const (
	historyLen  = 256
	subBuffer   = 1024
	pubDeadline = 100 * time.Millisecond
)

type pubsub struct {
	mu      sync.Mutex // held while publishing, so every subscriber sees one order
	history []events.Message
	subs    map[*subscriber]struct{}
	dropped atomic.Int64
	// Emitted, when set, is called with each event as it is published.
	emitted func(events.Message)
}

type subscriber struct {
	ch     chan events.Message
	filter eventFilter
}

func (p *pubsub) init() { p.subs = map[*subscriber]struct{}{} }

// OnEmit registers f to be called with every event at the moment it is
// published, before any subscriber reads it: a harness measuring how long
// tierlb takes to apply an event starts its clock there. Call it before
// the first event.
func (e *Engine) OnEmit(f func(events.Message)) { e.pub.emitted = f }

// emit stamps and publishes an event.
func (e *Engine) emit(m events.Message) {
	p := &e.pub
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	m.Time, m.TimeNano = now.Unix(), now.UnixNano()
	p.history = append(p.history, m)
	if len(p.history) > historyLen {
		p.history = p.history[len(p.history)-historyLen:]
	}
	if p.emitted != nil {
		p.emitted(m)
	}
	var timer *time.Timer
	for s := range p.subs {
		if !s.filter.match(m) {
			continue
		}
		select {
		case s.ch <- m:
			continue
		default:
		}
		if timer == nil {
			timer = time.NewTimer(pubDeadline)
			defer timer.Stop()
		}
		select {
		case s.ch <- m:
		case <-timer.C:
			p.dropped.Add(1)
		}
	}
}

// subscribe registers a subscriber and returns the buffered events it asked
// for with since (inclusive, as the daemon) and until.
func (p *pubsub) subscribe(f eventFilter, since, until time.Time) (*subscriber, []events.Message) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var replay []events.Message
	if !since.IsZero() || !until.IsZero() {
		for _, m := range p.history {
			if !since.IsZero() && m.TimeNano < since.UnixNano() {
				continue
			}
			if !until.IsZero() && m.TimeNano > until.UnixNano() {
				continue
			}
			if f.match(m) {
				replay = append(replay, m)
			}
		}
	}
	s := &subscriber{ch: make(chan events.Message, subBuffer), filter: f}
	p.subs[s] = struct{}{}
	return s, replay
}

func (p *pubsub) unsubscribe(s *subscriber) {
	p.mu.Lock()
	delete(p.subs, s)
	p.mu.Unlock()
}

// serveEvents streams events as GET /events does: the replay first, then
// live events until the client leaves, until passes or the engine stops.
func (e *Engine) serveEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	args, err := parseFilters(q.Get("filters"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	f, err := newEventFilter(args)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	since, err := parseTimestamp(q.Get("since"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "since: "+err.Error())
		return
	}
	until, err := parseTimestamp(q.Get("until"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "until: "+err.Error())
		return
	}
	sub, replay := e.pub.subscribe(f, since, until)
	defer e.pub.unsubscribe(sub)

	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	enc := json.NewEncoder(w)
	send := func(m events.Message) bool {
		if enc.Encode(m) != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	for _, m := range replay {
		if !send(m) {
			return
		}
	}
	var end <-chan time.Time
	if !until.IsZero() {
		if !time.Now().Before(until) {
			return
		}
		t := time.NewTimer(time.Until(until))
		defer t.Stop()
		end = t.C
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-end:
			return
		case m := <-sub.ch:
			if !until.IsZero() && m.TimeNano > until.UnixNano() {
				return
			}
			if !send(m) {
				return
			}
		}
	}
}

// parseTimestamp reads since/until as the client sends them: seconds with
// an optional fraction ("1700000000.000000001"); "" is no bound.
func parseTimestamp(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	secStr, fracStr, hasFrac := strings.Cut(s, ".")
	sec, err := strconv.ParseInt(secStr, 10, 64)
	if err != nil || sec < 0 {
		return time.Time{}, fmt.Errorf("invalid timestamp %q: want seconds since the epoch, optionally with a fraction", s)
	}
	var nsec int64
	if hasFrac {
		if fracStr == "" || len(fracStr) > 9 {
			return time.Time{}, fmt.Errorf("invalid timestamp %q: the fraction has 1 to 9 digits", s)
		}
		n, err := strconv.ParseInt(fracStr, 10, 64)
		if err != nil || n < 0 {
			return time.Time{}, fmt.Errorf("invalid timestamp %q: the fraction is not a number", s)
		}
		nsec = n * int64(pow10(9-len(fracStr)))
	}
	return time.Unix(sec, nsec), nil
}

func pow10(n int) int {
	p := 1
	for range n {
		p *= 10
	}
	return p
}
