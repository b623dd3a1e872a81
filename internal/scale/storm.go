package scale

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/events"
)

// A storm is a mix of the lifecycle operations a busy host sees, each
// emitting its events in the daemon's order, with the time real containers
// take between the steps (a stop's grace period, a start's setup), so that
// every step's change is seen on its own:
//
//	restart: kill | die, stop | start, restart   (5 container events)
//	stop:    kill | die, stop                    (3)
//	run:     create, start                       (2, a new container)
//	start:   start                               (1, a stopped container)
//
// The cycle below is 2 restarts, a stop, a run and a start: 16 container
// events over 5 operations. Network connect/disconnect events come too but
// are not counted as container events.
var cycle = []string{"restart", "restart", "stop", "run", "start"}

const eventsPerCycle = 16

// defaultStepGap is the time between an operation's steps: above the
// 100ms lag goal, so that a step whose change was not applied before the
// next one counts as late rather than disappearing into the next.
const defaultStepGap = 300 * time.Millisecond

type step struct {
	at time.Duration
	do func() error
}

// plan lays out a storm's steps. Containers operated on are distinct, so
// that each expected change names one event.
type plan struct {
	steps   []step
	ops     int
	running []string // IDs still free to restart or stop
	stopped []string // IDs free to start
}

func (h *harness) planStorm(rate int, d time.Duration) (*plan, error) {
	opsPerSec := float64(rate) * float64(len(cycle)) / eventsPerCycle
	n := int(opsPerSec * d.Seconds())
	pl := &plan{running: slices.Clone(h.running), stopped: slices.Clone(h.stopped)}
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(pl.running), func(i, j int) { pl.running[i], pl.running[j] = pl.running[j], pl.running[i] })
	take := func(from *[]string, what string) (string, error) {
		if len(*from) == 0 {
			return "", fmt.Errorf("storm needs more %s containers: add containers or lower the rate or the duration", what)
		}
		id := (*from)[len(*from)-1]
		*from = (*from)[:len(*from)-1]
		return id, nil
	}
	e := h.engine
	stepGap := cmp.Or(h.p.StepGap, defaultStepGap)
	for i := range n {
		at := time.Duration(float64(i) / opsPerSec * float64(time.Second))
		switch cycle[i%len(cycle)] {
		case "restart":
			id, err := take(&pl.running, "running")
			if err != nil {
				return nil, err
			}
			pl.add(at, func() error { return e.BeginStop(id) })
			pl.add(at+stepGap, func() error { return e.FinishStop(id) })
			pl.add(at+2*stepGap, func() error { return e.Start(id, true) })
		case "stop":
			id, err := take(&pl.running, "running")
			if err != nil {
				return nil, err
			}
			pl.add(at, func() error { return e.BeginStop(id) })
			pl.add(at+stepGap, func() error { return e.FinishStop(id) })
		case "run":
			name := fmt.Sprintf("new-%d", i)
			labels := h.labels(i % h.p.Services)
			pl.add(at, func() error { _, err := e.Run(name, labels); return err })
		case "start":
			id, err := take(&pl.stopped, "stopped")
			if err != nil {
				return nil, err
			}
			pl.add(at, func() error { return e.Start(id, false) })
		}
		pl.ops++
	}
	slices.SortStableFunc(pl.steps, func(a, b step) int { return int(a.at - b.at) })
	return pl, nil
}

func (pl *plan) add(at time.Duration, do func() error) { pl.steps = append(pl.steps, step{at, do}) }

// play runs the steps on time, from one goroutine: each step is run as
// soon as its time has come, all due steps at once.
func (pl *plan) play(ctx context.Context) error {
	start := time.Now()
	for i := 0; i < len(pl.steps); {
		wait := pl.steps[i].at - time.Since(start)
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
		for ; i < len(pl.steps) && pl.steps[i].at <= time.Since(start); i++ {
			if err := pl.steps[i].do(); err != nil {
				return err
			}
		}
	}
	return nil
}

// lags matches each change an event should cause with tierlb's log line
// saying it made that change.
type lags struct {
	mu       sync.Mutex
	on       bool
	events   int                  // container events emitted while on
	expected map[string]time.Time // change key → event time
	seen     map[string]time.Time // change key → log line arrival
}

func newLags() *lags {
	return &lags{expected: map[string]time.Time{}, seen: map[string]time.Time{}}
}

func key(kind, service, backend string) string { return kind + "|" + service + "|" + backend }

// emitted is the engine's OnEmit hook: an event that changes routing
// starts a clock for the change it should cause.
func (l *lags) emitted(labelService string) func(events.Message) {
	return func(m events.Message) {
		if m.Type != events.ContainerEventType {
			return
		}
		now := time.Now()
		l.mu.Lock()
		defer l.mu.Unlock()
		if !l.on {
			return
		}
		l.events++
		svc, name := m.Actor.Attributes[labelService], m.Actor.Attributes["name"]
		if svc == "" {
			return
		}
		switch m.Action {
		case events.ActionKill:
			l.expected[key("draining", svc, name)] = now
		case events.ActionDie:
			l.expected[key("removed", svc, name)] = now
		case events.ActionStart:
			l.expected[key("added", svc, name)] = now
		}
	}
}

func (l *lags) setOn(on bool) {
	l.mu.Lock()
	l.on = on
	l.mu.Unlock()
}

// follow records tierlb's changes until ctx ends.
func (l *lags) follow(ctx context.Context, changes <-chan change) {
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-changes:
			l.mu.Lock()
			k := key(c.kind, c.service, c.backend)
			if _, ok := l.seen[k]; !ok {
				l.seen[k] = c.at
			}
			l.mu.Unlock()
		}
	}
}

// pending counts expected changes not seen yet.
func (l *lags) pending() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for k := range l.expected {
		if _, ok := l.seen[k]; !ok {
			n++
		}
	}
	return n
}

// result computes every change's lag, and the changes never seen.
func (l *lags) result() (all []time.Duration, missed []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, at := range l.expected {
		seen, ok := l.seen[k]
		if !ok {
			missed = append(missed, k)
			continue
		}
		all = append(all, max(0, seen.Sub(at)))
	}
	slices.Sort(all)
	slices.Sort(missed)
	return all, missed
}

// byKind splits the lags of the changes seen by kind, each sorted.
func (l *lags) byKind() map[string][]time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string][]time.Duration{}
	for k, at := range l.expected {
		if seen, ok := l.seen[k]; ok {
			kind, _, _ := strings.Cut(k, "|")
			out[kind] = append(out[kind], max(0, seen.Sub(at)))
		}
	}
	for _, v := range out {
		slices.Sort(v)
	}
	return out
}
