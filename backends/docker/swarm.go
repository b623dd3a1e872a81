package docker

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"
)

// Swarm sends events for services and nodes but none for tasks, and it
// changes tasks some time after the event that caused it: the orchestrator
// scales within milliseconds, the updater replaces one batch after another.
// So a service that just had an event is "hot" and its tasks are relisted
// every hotPoll for hotWindow, or for as long as a rolling update runs.
const (
	hotPoll   = 100 * time.Millisecond
	hotWindow = 5 * time.Second
	// hotUpdateMax bounds how long an update keeps a service hot should
	// the event that ends it be lost.
	hotUpdateMax = 10 * time.Minute
)

// Labels Docker puts on every task container.
const (
	taskIDLabel    = "com.docker.swarm.task.id"
	serviceIDLabel = "com.docker.swarm.service.id"
)

// swarmState is what the provider knows of the Swarm; owned by Run's
// goroutine. Its maps are nil while Swarm mode is off.
type swarmState struct {
	on       bool
	services map[string]swarm.Service // selected services, by ID
	labels   map[string]map[string]string
	nodes    map[string]swarm.Node // by ID
	tasks    map[string]*ctr       // by task ID
	hot      map[string]time.Time  // service ID → relist every hotPoll until
	// infoRefused remembers that the engine refused /info, to warn once.
	infoRefused bool
	// foreignID is the proxy's container ID when the engine does not know
	// it: tierlb runs on a worker and talks to a manager.
	foreignID string
	// changed names the tasks (by ref) whose record was replaced or
	// removed since the last publish, so that a publish after a poll
	// recomputes those alone (see publishChanged).
	changed map[string]bool
}

// touch notes that the record of task id changed.
func (s *swarmState) touch(id string) {
	if s.changed == nil {
		s.changed = map[string]bool{}
	}
	s.changed[taskRef(id)] = true
}

// taskRef is the ref (see ctr.ref) of task id's record.
func taskRef(id string) string { return "task:" + id }

// detectSwarm decides whether this session discovers Swarm tasks:
// docker.swarm false never, auto when the engine is a manager, true
// requires one.
func (p *Provider) detectSwarm(ctx context.Context) (bool, error) {
	mode := p.cfg.Swarm
	if mode == "false" {
		return false, nil
	}
	ictx, cancel := context.WithTimeout(ctx, apiTimeout)
	res, err := p.cli.Info(ictx, client.InfoOptions{})
	cancel()
	if err != nil {
		// A socket proxy may refuse /info: in auto mode that engine is
		// treated as no manager, as it could not serve Swarm lists anyway.
		refused := cerrdefs.IsPermissionDenied(err) || cerrdefs.IsNotImplemented(err) || cerrdefs.IsNotFound(err)
		if mode == "true" || !refused {
			return false, fmt.Errorf("engine info (to tell whether it is a Swarm manager): %w", err)
		}
		if !p.sw.infoRefused {
			p.log.Warn("swarm mode off: the engine refuses to say whether it is a Swarm manager", "err", err)
		}
		p.sw = swarmState{infoRefused: true}
		return false, nil
	}
	sw := res.Info.Swarm
	manager := sw.LocalNodeState == swarm.LocalNodeStateActive && sw.ControlAvailable
	if !manager && mode == "true" {
		state := string(sw.LocalNodeState)
		if sw.LocalNodeState == swarm.LocalNodeStateActive {
			state = "active, as a worker"
		}
		return false, fmt.Errorf("docker.swarm is true but the engine at %s is not a Swarm manager (swarm: %s); point docker.host at a manager", p.host, state)
	}
	if manager != p.sw.on {
		if manager {
			p.log.Info("swarm mode: discovering Swarm services' tasks", "node", sw.NodeID, "poll", p.cfg.swarmPoll())
		} else if p.sw.on {
			p.log.Info("swarm mode off: the engine is no longer a Swarm manager")
		}
	}
	if !manager {
		p.sw = swarmState{}
	} else if !p.sw.on {
		p.sw = swarmState{on: true, tasks: map[string]*ctr{}, hot: map[string]time.Time{}}
	}
	return manager, nil
}

// relistSwarm rereads services, nodes and every selected service's tasks.
func (p *Provider) relistSwarm(ctx context.Context) error {
	if p.me.ID == "" && p.sw.foreignID != "" {
		if err := p.selfFromTask(ctx); err != nil {
			return err
		}
	}
	if err := p.listServices(ctx); err != nil {
		return err
	}
	if err := p.listNodes(ctx); err != nil {
		return err
	}
	return p.pollTasks(ctx, slices.Collect(maps.Keys(p.sw.services)), true)
}

// listServices finds the services whose labels (or task containers'
// labels) carry the prefix or match a configured selector, and forgets the
// tasks of services no longer selected.
func (p *Provider) listServices(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(ctx, apiTimeout)
	res, err := p.cli.ServiceList(lctx, client.ServiceListOptions{})
	cancel()
	if err != nil {
		return fmt.Errorf("list swarm services: %w", err)
	}
	sels := p.selectors()
	p.sw.services = map[string]swarm.Service{}
	p.sw.labels = map[string]map[string]string{}
	for _, svc := range res.Items {
		l := serviceLabels(svc)
		if p.candidate(l, sels) {
			p.sw.services[svc.ID], p.sw.labels[svc.ID] = svc, l
		}
	}
	for id, t := range p.sw.tasks {
		if _, ok := p.sw.services[t.Task.ServiceID]; !ok {
			delete(p.sw.tasks, id)
			p.sw.touch(id)
		}
	}
	return nil
}

func (p *Provider) listNodes(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(ctx, apiTimeout)
	res, err := p.cli.NodeList(lctx, client.NodeListOptions{})
	cancel()
	if err != nil {
		return fmt.Errorf("list swarm nodes: %w", err)
	}
	p.sw.nodes = make(map[string]swarm.Node, len(res.Items))
	for _, n := range res.Items {
		p.sw.nodes[n.ID] = n
	}
	return nil
}

// pollTasks relists the tasks of the given services that Swarm wants
// running: one filtered list, however many services. A task known before
// that is no longer in it has had its desired state changed: it is read
// once more (see readTasks), and stays (draining) until it has stopped. Only
// the regular polls (all true) read again a task already known to be
// leaving: a draining task's end is no hurry, and during a rolling update
// the hot polls would otherwise read every stopping task ten times a
// second. The tasks whose record changed are noted for the next publish.
func (p *Provider) pollTasks(ctx context.Context, serviceIDs []string, all bool) error {
	if len(serviceIDs) == 0 {
		return nil
	}
	slices.Sort(serviceIDs)
	fresh := map[string]*ctr{}
	keep := func(t *taskRow) {
		if c := p.taskRecord(t); c != nil {
			fresh[t.ID] = c
		}
	}
	err := p.listTasks(ctx, serviceIDs, keep)
	if cerrdefs.IsNotFound(err) {
		// The manager resolves every service of the filter first and fails
		// the whole list when one is gone: a service removed since the
		// last service list, whose event is still on its way. Relist the
		// services (forgetting that one's tasks) and poll those left.
		if err := p.listServices(ctx); err != nil {
			return err
		}
		serviceIDs = slices.DeleteFunc(serviceIDs, func(id string) bool { _, ok := p.sw.services[id]; return !ok })
		if len(serviceIDs) == 0 {
			return nil
		}
		clear(fresh)
		err = p.listTasks(ctx, serviceIDs, keep)
	}
	if err != nil {
		return fmt.Errorf("list swarm tasks: %w", err)
	}
	polled := make(map[string]bool, len(serviceIDs))
	for _, id := range serviceIDs {
		polled[id] = true
	}
	var left []string // known before, no longer in the list
	for _, id := range slices.Sorted(maps.Keys(p.sw.tasks)) {
		old := p.sw.tasks[id]
		if !polled[old.Task.ServiceID] || fresh[id] != nil {
			continue
		}
		if old.Task.Leaving && !all {
			fresh[id] = old
			continue
		}
		left = append(left, id)
	}
	if err := p.readTasks(ctx, left, keep); err != nil {
		return err
	}
	for id, t := range p.sw.tasks {
		if polled[t.Task.ServiceID] && fresh[id] == nil {
			delete(p.sw.tasks, id)
			p.sw.touch(id)
		}
	}
	for id, c := range fresh {
		if p.sw.tasks[id] != c {
			p.sw.tasks[id] = c
			p.sw.touch(id)
		}
	}
	return nil
}

// tasksPerRead bounds the IDs one task list asks for (25 characters
// each in the URL).
const tasksPerRead = 200

// readTasks reads the given tasks again, leaving out those the manager
// has forgotten: one inspect for a single task, else one list filtered by
// their IDs per tasksPerRead. A node drained with 500 tasks on it costs
// three requests, not 500 in a row before anything is published.
func (p *Provider) readTasks(ctx context.Context, ids []string, visit func(*taskRow)) error {
	if len(ids) == 1 {
		ictx, cancel := context.WithTimeout(ctx, apiTimeout)
		r, err := p.cli.TaskInspect(ictx, ids[0], client.TaskInspectOptions{})
		cancel()
		switch {
		case cerrdefs.IsNotFound(err):
			return nil
		case err != nil:
			return fmt.Errorf("inspect swarm task %s: %w", ids[0], err)
		}
		t, err := rowOf(r.Task)
		if err != nil {
			return fmt.Errorf("inspect swarm task %s: %w", ids[0], err)
		}
		visit(t)
		return nil
	}
	for chunk := range slices.Chunk(ids, tasksPerRead) {
		err := p.taskList(ctx, make(client.Filters).Add("id", chunk...), func(t *taskRow) {
			if slices.Contains(chunk, t.ID) { // the filter matches ID prefixes
				visit(t)
			}
		})
		if err != nil {
			return fmt.Errorf("list %d swarm tasks by ID: %w", len(chunk), err)
		}
	}
	return nil
}

// listTasks lists the tasks Swarm wants running of the given services.
func (p *Provider) listTasks(ctx context.Context, serviceIDs []string, visit func(*taskRow)) error {
	f := make(client.Filters).Add("desired-state", "running").Add("service", serviceIDs...)
	return p.taskList(ctx, f, visit)
}

// taskList reads a filtered task list, decoding only what tierlb uses
// (see taskRow).
func (p *Provider) taskList(ctx context.Context, f client.Filters, visit func(*taskRow)) error {
	return streamList(ctx, p.raw, "/tasks", f, "task", visit)
}

// taskRecord builds a task's record, keeping what a local container event
// said about it (a stop begun); nil when the task is finished or its
// service is not selected. The record known is kept when neither the
// task, nor its service, nor its node has changed since it was built.
func (p *Provider) taskRecord(t *taskRow) *ctr {
	svc, ok := p.sw.services[t.ServiceID]
	if !ok {
		return nil
	}
	old := p.sw.tasks[t.ID]
	if old != nil && p.reusable(old.Task, t, svc) {
		return old
	}
	c, ok := fromTask(t, svc, p.sw.labels[t.ServiceID], p.sw.nodes, p.cfg.labelPrefix())
	if !ok {
		return nil
	}
	if old != nil {
		c.Stopping = old.Stopping
	}
	return c
}

// reusable says whether a record still describes the task: every input
// of fromTask but the configuration comes from the task, its service and
// its node, and the Swarm store bumps an object's version on every change.
// An engine that gives no versions (0) gets every record rebuilt.
func (p *Provider) reusable(ti *taskInfo, t *taskRow, svc swarm.Service) bool {
	if t.Version.Index == 0 || svc.Version.Index == 0 || ti.Version != t.Version.Index || ti.ServiceVersion != svc.Version.Index {
		return false
	}
	n, known := p.sw.nodes[t.NodeID]
	if !known {
		return ti.NodeVersion == 0
	}
	return n.Version.Index != 0 && ti.NodeVersion == n.Version.Index
}

// swarmChange is what a batch of events asks the Swarm side to reread.
type swarmChange struct {
	services bool            // the service list (labels, selection)
	nodes    bool            // the node list, and then every task
	tasks    map[string]bool // service IDs whose tasks to relist
}

func (c *swarmChange) any() bool { return c.services || c.nodes || len(c.tasks) > 0 }

// swarmEvent notes what a service or node event changes and keeps the
// service hot while Swarm acts on it.
func (p *Provider) swarmEvent(m events.Message, ch *swarmChange, now time.Time) {
	p.metrics.event(string(m.Type) + "_" + string(m.Action))
	p.log.Debug("swarm event", "type", m.Type, "action", m.Action, "name", m.Actor.Attributes["name"])
	switch m.Type {
	case events.NodeEventType:
		ch.nodes = true
		for id := range p.sw.services {
			p.heat(id, now.Add(hotWindow))
		}
	case events.ServiceEventType:
		ch.services = true
		ch.tasks[m.Actor.ID] = true
		switch m.Actor.Attributes["updatestate.new"] {
		case "updating", "rollback_started":
			p.sw.hot[m.Actor.ID] = now.Add(hotUpdateMax)
		case "":
			p.heat(m.Actor.ID, now.Add(hotWindow))
		default: // completed, paused, rollback_completed, rollback_paused
			p.sw.hot[m.Actor.ID] = now.Add(hotWindow)
		}
	}
}

// taskContainerEvent applies a local task container's event: a stop drains
// the task at once, before the manager hears of it. It reports whether the
// event was a task container's (those are never routed as containers).
func (p *Provider) taskContainerEvent(m events.Message, ch *swarmChange, now time.Time) bool {
	attrs := m.Actor.Attributes
	taskID := attrs[taskIDLabel]
	if taskID == "" {
		return false
	}
	svcID := attrs[serviceIDLabel]
	if _, ok := p.sw.services[svcID]; !ok {
		return true
	}
	typ, _, _ := strings.Cut(string(m.Action), ":")
	p.metrics.event(typ)
	switch typ {
	case "kill", "stop", "die":
		if typ == "kill" && !terminating(attrs["signal"], nil) {
			return true
		}
		if t := p.sw.tasks[taskID]; t != nil {
			t.Stopping = true
			p.sw.touch(taskID)
		}
	}
	ch.tasks[svcID] = true
	p.heat(svcID, now.Add(hotWindow))
	return true
}

// heat keeps a service hot until at least t.
func (p *Provider) heat(serviceID string, t time.Time) {
	if p.sw.hot[serviceID].Before(t) {
		p.sw.hot[serviceID] = t
	}
}

// applySwarm rereads what a batch of events changed.
func (p *Provider) applySwarm(ctx context.Context, ch *swarmChange) error {
	if ch.services {
		if err := p.listServices(ctx); err != nil {
			return err
		}
	}
	if ch.nodes {
		if err := p.listNodes(ctx); err != nil {
			return err
		}
		return p.pollTasks(ctx, slices.Collect(maps.Keys(p.sw.services)), true)
	}
	var ids []string
	for id := range ch.tasks {
		if _, ok := p.sw.services[id]; ok {
			ids = append(ids, id)
		}
	}
	return p.pollTasks(ctx, ids, false)
}

// hotServices returns the services to relist on this hotPoll tick and
// forgets those that cooled down.
func (p *Provider) hotServices(now time.Time) []string {
	var ids []string
	for id, until := range p.sw.hot {
		_, selected := p.sw.services[id]
		if !selected || now.After(until) {
			delete(p.sw.hot, id)
			continue
		}
		ids = append(ids, id)
	}
	return ids
}

// selfFromTask finds the proxy among the Swarm's tasks when its container
// is on another node than the manager the provider talks to (through a
// socket proxy): the task with its container ID gives its overlays.
func (p *Provider) selfFromTask(ctx context.Context) error {
	id := p.sw.foreignID
	if id == "" {
		return nil
	}
	var me *self
	err := p.taskList(ctx, make(client.Filters).Add("desired-state", "running"), func(t *taskRow) {
		cs := t.Status.ContainerStatus
		if me != nil || cs == nil || cs.ContainerID != id {
			return
		}
		me = &self{Task: t.ID}
		for _, a := range t.NetworksAttachments {
			if !a.Network.Spec.Ingress {
				me.Networks = append(me.Networks, newEndpoint(a.Network.Spec.Name, a.Network.ID, netip.Addr{}))
			}
		}
	})
	if err != nil {
		return fmt.Errorf("list swarm tasks to find the proxy's own: %w", err)
	}
	if me == nil {
		return nil
	}
	sortEndpoints(me.Networks)
	if p.me == nil || p.me.String() != me.String() {
		p.log.Info("docker discovery runs " + me.String())
	}
	p.me = me
	return nil
}
