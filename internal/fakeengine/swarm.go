package fakeengine

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/swarm"
)

// Overlay is the Swarm network every task is attached to; a local
// container joins it with ConnectOverlay, as tierlb's own container does
// in a stack.
const (
	OverlayName = "fakeoverlay"
	overlayID   = "0verlay0000000000000000a"
)

// Service is the engine's record of a replicated Swarm service.
type Service struct {
	ID, Name string
	Labels   map[string]string // the service's own (deploy.labels)
	Replicas int
	// UpdateState is the rolling update's state ("updating",
	// "completed", ...), "" when none ran.
	UpdateState string
	Created     time.Time
	version     uint64
	updated     time.Time
	nextSlot    int
}

// Task is one run of a service's replica on a node.
type Task struct {
	ID, ServiceID string
	Service       string // the service's name
	Slot          int
	NodeID        string
	IP            netip.Addr
	Desired       swarm.TaskState // running, then shutdown
	State         swarm.TaskState // running, then shutdown once its container has exited
	Created       time.Time
	version       uint64
	updated       time.Time
}

// Name is the name Docker gives the task's container, and tierlb its
// backend: SERVICE.SLOT.TASKID.
func (t Task) Name() string { return t.Service + "." + strconv.Itoa(t.Slot) + "." + t.ID }

// Node is a Swarm node; the first is the manager the engine is.
type Node struct {
	ID, Hostname string
	Manager      bool
	Availability swarm.NodeAvailability
	State        swarm.NodeState
	version      uint64
	updated      time.Time
}

// swarmID derives a 25-character Swarm object ID, reproducibly.
func swarmID(kind, name string) string {
	sum := sha256.Sum256([]byte("fakeengine/" + kind + "/" + name))
	return hex.EncodeToString(sum[:])[:25]
}

// initSwarm makes the nodes: node-1 the manager, the rest workers.
func (e *Engine) initSwarm() {
	n := max(1, e.opts.Nodes)
	now := time.Now().UTC()
	for i := range n {
		host := fmt.Sprintf("node-%d", i+1)
		e.nodes = append(e.nodes, &Node{ID: swarmID("node", host), Hostname: host, Manager: i == 0,
			Availability: swarm.NodeAvailabilityActive, State: swarm.NodeStateReady, version: e.nextVersion(), updated: now})
	}
	e.services, e.tasks = map[string]*Service{}, map[string]*Task{}
}

// nextVersion is the Swarm store's version index; e.mu is held.
func (e *Engine) nextVersion() uint64 { e.version++; return e.version }

// CreateService creates a replicated service and its tasks, running at
// once, spread over the workers (the manager too when it is alone), and
// emits the service's create event.
func (e *Engine) CreateService(name string, replicas int, labels map[string]string) (Service, []Task, error) {
	e.mu.Lock()
	if !e.opts.Swarm {
		e.mu.Unlock()
		return Service{}, nil, fmt.Errorf("fake engine: not a Swarm manager")
	}
	for _, s := range e.services {
		if s.Name == name {
			e.mu.Unlock()
			return Service{}, nil, fmt.Errorf("fake engine: service name %q is already in use", name)
		}
	}
	now := time.Now().UTC()
	s := &Service{ID: swarmID("service", name), Name: name, Labels: maps.Clone(labels), Replicas: replicas,
		Created: now, updated: now, version: e.nextVersion()}
	e.services[s.ID] = s
	e.svcOrder = append(e.svcOrder, s.ID)
	var started []Task
	for range replicas {
		s.nextSlot++
		started = append(started, *e.newTask(s, s.nextSlot, ""))
	}
	ev := serviceEvent(s, events.ActionCreate, nil)
	snap := *s
	e.mu.Unlock()
	e.emit(ev)
	return snap, started, nil
}

// newTask adds a running task in slot, on a node other than avoid;
// e.mu is held.
func (e *Engine) newTask(s *Service, slot int, avoid string) *Task {
	now := time.Now().UTC()
	t := &Task{ID: swarmID("task", fmt.Sprintf("%s/%d", s.ID, e.taskSeq)), ServiceID: s.ID, Service: s.Name, Slot: slot,
		NodeID: e.placeNode(avoid), IP: loopbackAddr(e.nextIP), Desired: swarm.TaskStateRunning, State: swarm.TaskStateRunning,
		Created: now, updated: now, version: e.nextVersion()}
	e.taskSeq++
	e.nextIP++
	e.tasks[t.ID] = t
	e.taskOrder = append(e.taskOrder, t.ID)
	return t
}

// placeNode picks the next active, ready worker round robin (the manager
// when no worker is), other than avoid; e.mu is held.
func (e *Engine) placeNode(avoid string) string {
	var ok []string
	for _, n := range e.nodes {
		if n.Availability == swarm.NodeAvailabilityActive && n.State == swarm.NodeStateReady && n.ID != avoid && (!n.Manager || len(e.nodes) == 1) {
			ok = append(ok, n.ID)
		}
	}
	if len(ok) == 0 {
		return e.nodes[0].ID
	}
	e.placed++
	return ok[e.placed%len(ok)]
}

// ScaleService changes a service's replicas and emits its update event
// (replicas.old/new): new slots get running tasks, the highest slots'
// tasks get desired state shutdown (EndTask ends them).
func (e *Engine) ScaleService(ref string, replicas int) (started, stopping []Task, err error) {
	e.mu.Lock()
	s := e.lookupService(ref)
	if s == nil {
		e.mu.Unlock()
		return nil, nil, fmt.Errorf("fake engine: service %s not found", ref)
	}
	old := s.Replicas
	s.Replicas, s.version, s.updated = replicas, e.nextVersion(), time.Now().UTC()
	live := e.liveTasks(s.ID)
	for i := len(live); i < replicas; i++ {
		s.nextSlot++
		started = append(started, *e.newTask(s, s.nextSlot, ""))
	}
	if len(live) > replicas {
		slices.SortFunc(live, func(a, b *Task) int { return b.Slot - a.Slot })
		for _, t := range live[:len(live)-replicas] {
			e.setDesired(t, swarm.TaskStateShutdown)
			stopping = append(stopping, *t)
		}
	}
	ev := serviceEvent(s, events.ActionUpdate, map[string]string{"replicas.old": strconv.Itoa(old), "replicas.new": strconv.Itoa(replicas)})
	e.mu.Unlock()
	e.emit(ev)
	return started, stopping, nil
}

// UpdateService sets a service's rolling update state ("updating",
// "completed", "paused", "rollback_started", ...) and emits its update
// event with updatestate.old/new, as the daemon does.
func (e *Engine) UpdateService(ref, state string) error {
	e.mu.Lock()
	s := e.lookupService(ref)
	if s == nil {
		e.mu.Unlock()
		return fmt.Errorf("fake engine: service %s not found", ref)
	}
	attrs := map[string]string{"updatestate.new": state}
	if s.UpdateState != "" {
		attrs["updatestate.old"] = s.UpdateState
	}
	s.UpdateState, s.version, s.updated = state, e.nextVersion(), time.Now().UTC()
	ev := serviceEvent(s, events.ActionUpdate, attrs)
	e.mu.Unlock()
	e.emit(ev)
	return nil
}

// ReplaceTask is one step of a rolling update: the task's desired state
// becomes shutdown and a new running task takes its slot. Swarm emits no
// event for it: the service's "updating" event came before.
func (e *Engine) ReplaceTask(id string) (Task, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tasks[id]
	if t == nil || t.Desired != swarm.TaskStateRunning {
		return Task{}, fmt.Errorf("fake engine: task %s is not desired running", id)
	}
	e.setDesired(t, swarm.TaskStateShutdown)
	return *e.newTask(e.services[t.ServiceID], t.Slot, ""), nil
}

// EndTask records that a task's container has exited: its state becomes
// shutdown. No event: Swarm sends none for tasks.
func (e *Engine) EndTask(id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tasks[id]
	if t == nil || t.State != swarm.TaskStateRunning {
		return fmt.Errorf("fake engine: task %s is not running", id)
	}
	t.State, t.version, t.updated = swarm.TaskStateShutdown, e.nextVersion(), time.Now().UTC()
	return nil
}

// DrainNode sets a node's availability to drain, emits the node's update
// event (availability.old/new), then moves every task it runs: desired
// shutdown there, a new running task in the same slot elsewhere.
func (e *Engine) DrainNode(ref string) (stopping, started []Task, err error) {
	e.mu.Lock()
	n := e.lookupNode(ref)
	if n == nil {
		e.mu.Unlock()
		return nil, nil, fmt.Errorf("fake engine: node %s not found", ref)
	}
	old := n.Availability
	n.Availability, n.version, n.updated = swarm.NodeAvailabilityDrain, e.nextVersion(), time.Now().UTC()
	ev := events.Message{Type: events.NodeEventType, Action: events.ActionUpdate, Scope: "swarm",
		Actor: events.Actor{ID: n.ID, Attributes: map[string]string{"name": n.Hostname,
			"availability.old": string(old), "availability.new": string(n.Availability)}}}
	e.mu.Unlock()
	e.emit(ev)
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, id := range e.taskOrder {
		t := e.tasks[id]
		if t.NodeID != n.ID || t.Desired != swarm.TaskStateRunning {
			continue
		}
		e.setDesired(t, swarm.TaskStateShutdown)
		stopping = append(stopping, *t)
		started = append(started, *e.newTask(e.services[t.ServiceID], t.Slot, n.ID))
	}
	return stopping, started, nil
}

// RemoveService deletes a service and its tasks (the manager forgets
// them) and emits the service's remove event.
func (e *Engine) RemoveService(ref string) ([]Task, error) {
	e.mu.Lock()
	s := e.lookupService(ref)
	if s == nil {
		e.mu.Unlock()
		return nil, fmt.Errorf("fake engine: service %s not found", ref)
	}
	var gone []Task
	e.taskOrder = slices.DeleteFunc(e.taskOrder, func(id string) bool {
		t := e.tasks[id]
		if t.ServiceID != s.ID {
			return false
		}
		gone = append(gone, *t)
		delete(e.tasks, id)
		return true
	})
	delete(e.services, s.ID)
	e.svcOrder = slices.DeleteFunc(e.svcOrder, func(id string) bool { return id == s.ID })
	ev := serviceEvent(s, events.ActionRemove, nil)
	e.mu.Unlock()
	e.emit(ev)
	return gone, nil
}

// Tasks returns a service's tasks, by ID or name, in creation order;
// those desired running only, unless all.
func (e *Engine) Tasks(service string, all bool) []Task {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.lookupService(service)
	if s == nil {
		return nil
	}
	var out []Task
	for _, id := range e.taskOrder {
		if t := e.tasks[id]; t.ServiceID == s.ID && (all || t.Desired == swarm.TaskStateRunning) {
			out = append(out, *t)
		}
	}
	return out
}

// Nodes returns the nodes, the manager first.
func (e *Engine) Nodes() []Node {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Node, len(e.nodes))
	for i, n := range e.nodes {
		out[i] = *n
	}
	return out
}

func (e *Engine) setDesired(t *Task, s swarm.TaskState) {
	t.Desired, t.version, t.updated = s, e.nextVersion(), time.Now().UTC()
}

// liveTasks are a service's tasks desired running; e.mu is held.
func (e *Engine) liveTasks(serviceID string) []*Task {
	var out []*Task
	for _, id := range e.taskOrder {
		if t := e.tasks[id]; t.ServiceID == serviceID && t.Desired == swarm.TaskStateRunning {
			out = append(out, t)
		}
	}
	return out
}

// lookupService finds a service as the daemon does: full ID, name, then
// a unique ID prefix; e.mu is held.
func (e *Engine) lookupService(ref string) *Service {
	if s := e.services[ref]; s != nil {
		return s
	}
	var found *Service
	for _, id := range e.svcOrder {
		s := e.services[id]
		if s.Name == ref {
			return s
		}
		if ref != "" && strings.HasPrefix(id, ref) {
			if found != nil {
				return nil
			}
			found = s
		}
	}
	return found
}

// lookupNode finds a node by ID, hostname or unique ID prefix; e.mu is
// held.
func (e *Engine) lookupNode(ref string) *Node {
	var found *Node
	for _, n := range e.nodes {
		if n.ID == ref || n.Hostname == ref {
			return n
		}
		if ref != "" && strings.HasPrefix(n.ID, ref) {
			if found != nil {
				return nil
			}
			found = n
		}
	}
	return found
}

// serviceEvent is a service event as the daemon sends it: scope swarm,
// the service's name and what the update changed.
func serviceEvent(s *Service, action events.Action, extra map[string]string) events.Message {
	attrs := map[string]string{"name": s.Name}
	maps.Copy(attrs, extra)
	return events.Message{Type: events.ServiceEventType, Action: action, Scope: "swarm",
		Actor: events.Actor{ID: s.ID, Attributes: attrs}}
}
