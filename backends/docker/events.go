package docker

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
)

// eventFilters asks the daemon only for the actions that change routing.
// No label filter: the daemon would drop every network event with it.
// With Swarm on, service and node events (scope swarm) come on the same
// stream.
func eventFilters(swarmOn bool) client.Filters {
	if !swarmOn {
		return make(client.Filters).
			Add("type", string(events.ContainerEventType), string(events.NetworkEventType)).
			Add("event", eventTypes...)
	}
	return make(client.Filters).
		Add("type", string(events.ContainerEventType), string(events.NetworkEventType),
			string(events.ServiceEventType), string(events.NodeEventType)).
		Add("event", append(slices.Clone(eventTypes), "create", "update", "remove")...)
}

// queue holds events between the goroutine that drains the stream and the
// one that applies them. It is unbounded on purpose: the daemon drops events
// for a subscriber that lags 100ms, so the drainer must never block.
type queue struct {
	mu     sync.Mutex
	msgs   []events.Message
	err    error
	urgent bool          // a queued event takes a replica out of rotation
	notify chan struct{} // one pending wake-up
}

func newQueue() *queue { return &queue{notify: make(chan struct{}, 1)} }

func (q *queue) push(m events.Message) {
	q.mu.Lock()
	q.msgs = append(q.msgs, m)
	q.urgent = q.urgent || outOfRotation(m)
	q.mu.Unlock()
	q.wake()
}

// outOfRotation says whether an event stops a replica taking connections.
// Such events skip the coalescing wait: every millisecond a stopping
// container stays in the pool is a new connection it may get.
func outOfRotation(m events.Message) bool {
	if m.Type != events.ContainerEventType {
		return false
	}
	typ, _, _ := strings.Cut(string(m.Action), ":")
	switch typ {
	case "kill", "stop", "die", "pause":
		return true
	}
	return false
}

// isUrgent reports whether a queued event should be applied without waiting
// for the rest of its burst.
func (q *queue) isUrgent() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.urgent
}

func (q *queue) fail(err error) {
	q.mu.Lock()
	if q.err == nil {
		q.err = err
	}
	q.mu.Unlock()
	q.wake()
}

func (q *queue) wake() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// take returns every queued event and the stream's error, if it ended.
func (q *queue) take() ([]events.Message, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	msgs := q.msgs
	q.msgs, q.urgent = nil, false
	return msgs, q.err
}

// drainEvents copies the stream into the queue until it ends.
func drainEvents(ctx context.Context, res client.EventsResult, q *queue) {
	for {
		select {
		case m := <-res.Messages:
			q.push(m)
		case err := <-res.Err:
			q.fail(err)
			return
		case <-ctx.Done():
			return
		}
	}
}

// applyEvents updates the records from a batch of events. Facts an event
// states outright (stop begun, paused, health) are applied at once without
// asking the engine; anything else is re-read with one inspect per container,
// never a full relist.
func (p *Provider) applyEvents(ctx context.Context, msgs []events.Message) error {
	sels := p.selectors()
	dirty := map[string]bool{}
	stopping := map[string]bool{} // kills seen for containers not yet recorded
	changed := map[string]bool{}  // records the batch may have changed
	killed := map[string]string{} // kills whose signal only an inspect can judge
	selfDirty := false
	sw := swarmChange{tasks: map[string]bool{}}
	now := time.Now()
	for _, m := range msgs {
		attrs := m.Actor.Attributes
		if p.sw.on {
			switch {
			case m.Type == events.ServiceEventType || m.Type == events.NodeEventType:
				p.swarmEvent(m, &sw, now)
				continue
			case m.Type == events.ContainerEventType && p.taskContainerEvent(m, &sw, now):
				continue
			}
		}
		switch m.Type {
		case events.NetworkEventType:
			cid := attrs["container"]
			if attrs["type"] == "bridge" {
				p.bridges[m.Actor.ID], p.bridges[attrs["name"]] = true, true
			}
			switch {
			case p.me != nil && p.me.owns(cid):
				selfDirty = true
			case p.ctrs[cid] != nil:
				dirty[cid], changed[cid] = true, true
			default:
				continue // not ours; a starting container's own start event follows
			}
			p.metrics.event(string(m.Action))
			continue
		case events.ContainerEventType:
			if string(m.Action) == "create" || string(m.Action) == "update" {
				continue // asked for Swarm's sake; a container counts from its start
			}
		default:
			continue
		}
		id := m.Actor.ID
		c := p.ctrs[id]
		if c == nil && !dirty[id] && !p.candidate(attrs, sels) {
			continue
		}
		changed[id] = true
		action := string(m.Action)
		typ, status, _ := strings.Cut(action, ":")
		p.metrics.event(typ)
		p.log.Debug("docker event", "action", action, "container", attrs["name"])
		switch typ {
		case "start":
			if c != nil {
				c.Stopping, c.StopAt = false, 0
			}
			delete(stopping, id)
			delete(killed, id)
			dirty[id] = true
		case "kill", "stop":
			if typ == "kill" && !terminating(attrs["signal"], c) {
				if c != nil && c.FromList {
					killed[id] = attrs["signal"] // its STOPSIGNAL is unknown: asked below
				}
				continue // e.g. SIGHUP for a reload: the container goes on
			}
			if c != nil {
				if !c.Stopping {
					c.StopAt = m.TimeNano
				}
				c.Stopping = true
			} else if dirty[id] {
				stopping[id] = true
			}
		case "die", "destroy":
			delete(p.ctrs, id)
			delete(dirty, id)
			delete(stopping, id)
		case "pause", "unpause":
			if c != nil {
				c.Paused = typ == "pause"
			} else {
				dirty[id] = true
			}
		case "health_status":
			status = strings.TrimSpace(status)
			if c != nil && slices.Contains([]string{"healthy", "unhealthy", "starting"}, status) {
				c.Health = status
			} else {
				dirty[id] = true
			}
		default: // rename and anything else: read it again
			dirty[id] = true
		}
	}
	if selfDirty {
		if err := p.refreshSelf(ctx); err != nil {
			return err
		}
	}
	if sw.any() {
		if err := p.applySwarm(ctx, &sw); err != nil {
			return err
		}
	}
	ids := make([]string, 0, len(dirty))
	for id := range dirty {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if len(ids) > 0 && !selfDirty && !sw.any() {
		// What the events said outright (a stop begun, a pause, a
		// removal) goes out before the inspects: a replica being stopped
		// must not wait for other containers' round trips to drain.
		known := make(map[string]bool, len(changed))
		for id := range changed {
			if !dirty[id] {
				known[id] = true
			}
		}
		if len(known) > 0 {
			p.publishChanged(known)
		}
	}
	fresh, err := p.inspectAll(ctx, ids)
	if err != nil {
		return err
	}
	for _, id := range ids {
		c, old := fresh[id], p.ctrs[id]
		if c == nil {
			delete(p.ctrs, id)
			continue
		}
		switch {
		case stopping[id]:
			c.Stopping = true
		case old != nil && old.Stopping && sameRun(old, c):
			c.Stopping, c.StopAt = true, old.StopAt
		}
		p.ctrs[id] = c
	}
	if err := p.judgeKills(ctx, killed); err != nil {
		return err
	}
	if selfDirty {
		changed = nil // the proxy's networks changed: look at everything
	}
	p.publishChanged(changed)
	return nil
}

// judgeKills completes list-built records that got a kill with a signal
// that only their STOPSIGNAL can say stops them, and drains those it does.
// The record stays (the batch's other facts are on it); the inspect only
// adds what the list did not say.
func (p *Provider) judgeKills(ctx context.Context, killed map[string]string) error {
	var ids []string
	for id := range killed {
		if c := p.ctrs[id]; c != nil && c.FromList {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	slices.Sort(ids)
	fresh, err := p.inspectAll(ctx, ids)
	if err != nil {
		return err
	}
	for _, id := range ids {
		c, f := p.ctrs[id], fresh[id]
		if f == nil {
			continue // gone already: its die event removes it
		}
		c.run, c.FromList = f.run, false // f, fresh, is dropped
		if terminating(killed[id], c) && !c.Stopping {
			c.Stopping, c.StopAt = true, time.Now().UnixNano()
		}
	}
	return nil
}

// terminating says whether a kill event's signal stops the container: the
// usual stop signals, or the container's own STOPSIGNAL. Other signals
// (SIGHUP, SIGUSR1 for a reload) leave it running.
func terminating(sig string, c *ctr) bool {
	n, err := strconv.Atoi(sig)
	if err != nil {
		return true // unknown: be safe and stop sending new connections
	}
	switch n {
	case 2, 3, 9, 15: // SIGINT, SIGQUIT, SIGKILL, SIGTERM
		return true
	}
	return c != nil && c.StopSignal() != "" && signalNumber(c.StopSignal()) == n
}

var signalNumbers = map[string]int{
	"HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "BUS": 7, "FPE": 8, "KILL": 9,
	"USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15, "STKFLT": 16,
	"CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22, "URG": 23,
	"XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28, "IO": 29, "PWR": 30, "SYS": 31,
}

// signalNumber reads a STOPSIGNAL as Docker accepts it: "SIGTERM", "TERM"
// or "15"; -1 when unknown.
func signalNumber(s string) int {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	if n, ok := signalNumbers[strings.TrimPrefix(strings.ToUpper(s), "SIG")]; ok {
		return n
	}
	return -1
}
