package scale

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/swarm"

	"github.com/tierlb/tierlb/internal/fakeengine"
)

// In Swarm mode (Params.Swarm) the fake engine is a Swarm manager of
// Params.Nodes nodes and the K backends are the tasks of S replicated
// services, declared by their service labels (deploy.labels) as the
// README's Swarm mode says; tierlb's own container is on the overlay the
// tasks are on. The churn plays Swarm's operations at ChurnRate per
// second, each timed from the operation to tierlb's log line:
//
//	scale up:   update event; a new task running           → added
//	scale down: update event; highest slot desired shutdown → draining,
//	            its container exits StepGap later           → removed
//	update:     "updating" event; a task replaced (desired shutdown, a new
//	            one running)                                → draining, added;
//	            the old one exits StepGap later, "completed" → removed
//
// plus, halfway, a worker drained (node event; every task on it moves:
// draining and added) and, at the end, the last service removed (remove
// event: every task removed).
var churnCycle = []string{"scale-up", "scale-down", "update"}

// hotWindow is tierlb's: a service relisted every 100ms for 5s after its
// event. The rest window starts after it.
const hotWindow = 5 * time.Second

// setupSwarm creates the services and tierlb's own container on the
// overlay; it returns the container's ID.
func (h *harness) setupSwarm() (string, error) {
	p := h.p
	self, err := h.engine.Run("tierlb", nil)
	if err != nil {
		return "", err
	}
	if err := h.engine.ConnectOverlay(self.ID); err != nil {
		return "", err
	}
	h.want = map[string]int{}
	for i := range p.Services {
		n := p.Containers / p.Services
		if i < p.Containers%p.Services {
			n++
		}
		name := fmt.Sprintf("svc%d", i)
		_, tasks, err := h.engine.CreateService(name, n, h.labels(i))
		if err != nil {
			return "", err
		}
		for _, t := range tasks {
			h.byIP[t.IP.String()] = name
		}
		h.want[name] = n
	}
	h.progress("fake Swarm: %d tasks over %d services on %d nodes", p.Containers, p.Services, max(1, p.Nodes))
	return self.ID, nil
}

// churn plays the Swarm operations and waits for their changes.
func (h *harness) churn(ctx context.Context, proc *tierlb, lags *lags) (*Storm, error) {
	pl, err := h.planChurn()
	if err != nil {
		return nil, err
	}
	h.progress("churn: %d Swarm operations at %d/s for %s", pl.ops, h.p.ChurnRate, h.p.ChurnFor)
	// A task that left is removed at the next regular poll: the wait
	// allows a few of them.
	s, err := h.playMeasured(ctx, proc, lags, pl, h.p.ChurnFor, max(15*time.Second, 5*h.swarmPoll()), "churn")
	if err != nil {
		return nil, err
	}
	h.progress("churn: %d operations, %d Swarm events, %d changes: lag p50 %s p99 %s max %s, %d missed, CPU %s",
		s.Ops, s.Events, s.Changes, s.Quantile(0.5), s.Quantile(0.99), s.Quantile(1), len(s.Missed), s.CPU)
	return s, nil
}

func (h *harness) swarmPoll() time.Duration { return cmp.Or(h.p.SwarmPoll, time.Second) }

// planChurn lays the operations out; each step reads the engine when it
// runs, so that it acts on the tasks the steps before it left.
func (h *harness) planChurn() (*plan, error) {
	p, e := h.p, h.engine
	if p.Services < 2 || p.Containers < 2*p.Services {
		return nil, fmt.Errorf("scale: a churn (ChurnRate) needs Services of 2 or more and Containers of 2 per service or more, got %d over %d", p.Containers, p.Services)
	}
	gap := cmp.Or(p.StepGap, defaultStepGap)
	live := p.Services - 1 // the last one is removed at the end
	n := int(float64(p.ChurnRate) * p.ChurnFor.Seconds())
	pl := &plan{}
	expectAll := func(kind string, ts []fakeengine.Task, at time.Time) {
		for _, t := range ts {
			h.lags.expect(kind, t.Service, t.Name(), at)
		}
	}
	end := func(ts *[]fakeengine.Task) func() error {
		return func() error {
			now := time.Now()
			for _, t := range *ts {
				if err := e.EndTask(t.ID); err != nil {
					return err
				}
			}
			expectAll("removed", *ts, now)
			return nil
		}
	}
	for i := range n {
		at := time.Duration(float64(i) / float64(p.ChurnRate) * float64(time.Second))
		svc := fmt.Sprintf("svc%d", i%live)
		switch churnCycle[(i/live)%len(churnCycle)] {
		case "scale-up":
			pl.add(at, func() error {
				now := time.Now()
				started, _, err := e.ScaleService(svc, len(e.Tasks(svc, false))+1)
				expectAll("added", started, now)
				return err
			})
		case "scale-down":
			var stopping []fakeengine.Task
			pl.add(at, func() error {
				now := time.Now()
				_, s, err := e.ScaleService(svc, len(e.Tasks(svc, false))-1)
				stopping = s
				expectAll("draining", s, now)
				return err
			})
			pl.add(at+gap, end(&stopping))
		case "update":
			var old []fakeengine.Task
			pl.add(at, func() error {
				if err := e.UpdateService(svc, "updating"); err != nil {
					return err
				}
				now := time.Now()
				t := e.Tasks(svc, false)[0]
				nt, err := e.ReplaceTask(t.ID)
				old = []fakeengine.Task{t}
				expectAll("draining", old, now)
				expectAll("added", []fakeengine.Task{nt}, now)
				return err
			})
			pl.add(at+gap, end(&old))
			pl.add(at+gap, func() error { return e.UpdateService(svc, "completed") })
		}
		pl.ops++
	}
	if nodes := e.Nodes(); len(nodes) > 2 {
		var stopping []fakeengine.Task
		pl.add(p.ChurnFor/2, func() error {
			now := time.Now()
			s, started, err := e.DrainNode(nodes[1].Hostname)
			stopping = s
			expectAll("draining", s, now)
			expectAll("added", started, now)
			return err
		})
		pl.add(p.ChurnFor/2+gap, end(&stopping))
		pl.ops++
	}
	last := fmt.Sprintf("svc%d", p.Services-1)
	pl.add(p.ChurnFor, func() error {
		now := time.Now()
		gone, err := e.RemoveService(last)
		expectAll("removed", slices.DeleteFunc(gone, func(t fakeengine.Task) bool { return t.Desired != swarm.TaskStateRunning }), now)
		return err
	})
	pl.ops++
	slices.SortStableFunc(pl.steps, func(a, b step) int { return int(a.at - b.at) })
	return pl, nil
}

// countSwarmEvents is the engine's OnEmit hook in Swarm mode: it counts
// the service and node events played while the lags are on.
func (l *lags) countSwarmEvents(m events.Message) {
	if m.Type != events.ServiceEventType && m.Type != events.NodeEventType {
		return
	}
	l.mu.Lock()
	if l.on {
		l.events++
	}
	l.mu.Unlock()
}

// expect starts the clock of a change the harness itself caused.
func (l *lags) expect(kind, service, backend string, at time.Time) {
	l.mu.Lock()
	if l.on {
		l.expected[key(kind, service, backend)] = at
	}
	l.mu.Unlock()
}

// settled checks that tierlb's pools hold exactly the tasks Swarm wants
// running once the churn is over: what a missed change would break.
func (h *harness) settled(proc *tierlb) error {
	want := map[string]int{}
	for i := range h.p.Services {
		name := fmt.Sprintf("svc%d", i)
		want[name] = len(h.engine.Tasks(name, false))
	}
	return proc.waitFor(max(15*time.Second, 5*h.swarmPoll()), "pools matching Swarm's tasks after the churn", func() bool {
		for svc, n := range want {
			if proc.counts[svc] != n {
				return false
			}
		}
		return true
	})
}
