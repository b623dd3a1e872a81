package docker

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/client"
)

// fakeSwarm is the manager side of the fake engine: services, nodes and
// tasks, and a count of every Swarm API call.
type fakeSwarm struct {
	worker   bool  // the engine is a worker, not a manager
	infoErr  error // what /info answers, when set
	services map[string]swarm.Service
	nodes    map[string]swarm.Node
	tasks    map[string]swarm.Task
	calls    map[string]int
	// taskFilters is the filter of the latest TaskList call.
	taskFilters client.Filters
}

// withSwarm makes the fake engine a Swarm manager.
func (f *fakeClient) withSwarm() *fakeClient {
	f.swarm = &fakeSwarm{services: map[string]swarm.Service{}, nodes: map[string]swarm.Node{},
		tasks: map[string]swarm.Task{}, calls: map[string]int{}}
	return f
}

func (f *fakeClient) Info(context.Context, client.InfoOptions) (client.SystemInfoResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down != nil {
		return client.SystemInfoResult{}, f.down
	}
	var info system.Info
	if f.swarm != nil && f.swarm.infoErr != nil {
		return client.SystemInfoResult{}, f.swarm.infoErr
	}
	if f.swarm != nil {
		f.swarm.calls["info"]++
		info.Swarm = swarm.Info{NodeID: "node-1", LocalNodeState: swarm.LocalNodeStateActive, ControlAvailable: !f.swarm.worker}
	} else {
		info.Swarm = swarm.Info{LocalNodeState: swarm.LocalNodeStateInactive}
	}
	return client.SystemInfoResult{Info: info}, nil
}

func (f *fakeClient) ServiceList(context.Context, client.ServiceListOptions) (client.ServiceListResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down != nil {
		return client.ServiceListResult{}, f.down
	}
	f.swarm.calls["services"]++
	var out []swarm.Service
	for _, id := range slices.Sorted(maps.Keys(f.swarm.services)) {
		out = append(out, f.swarm.services[id])
	}
	return client.ServiceListResult{Items: out}, nil
}

func (f *fakeClient) NodeList(context.Context, client.NodeListOptions) (client.NodeListResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down != nil {
		return client.NodeListResult{}, f.down
	}
	f.swarm.calls["nodes"]++
	var out []swarm.Node
	for _, id := range slices.Sorted(maps.Keys(f.swarm.nodes)) {
		out = append(out, f.swarm.nodes[id])
	}
	return client.NodeListResult{Items: out}, nil
}

// TaskList honours the service and desired-state filters, as the manager does.
func (f *fakeClient) TaskList(_ context.Context, opts client.TaskListOptions) (client.TaskListResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down != nil {
		return client.TaskListResult{}, f.down
	}
	f.swarm.calls["tasks"]++
	f.swarm.taskFilters = opts.Filters
	for id := range opts.Filters["service"] {
		if _, ok := f.swarm.services[id]; !ok { // as the manager: every service named must exist
			return client.TaskListResult{}, cerrdefs.ErrNotFound.WithMessage("service " + id + " not found")
		}
	}
	var out []swarm.Task
	for _, id := range slices.Sorted(maps.Keys(f.swarm.tasks)) {
		t := f.swarm.tasks[id]
		if want := opts.Filters["service"]; len(want) > 0 && !want[t.ServiceID] {
			continue
		}
		if want := opts.Filters["desired-state"]; len(want) > 0 && !want[string(t.DesiredState)] {
			continue
		}
		if want := opts.Filters["id"]; len(want) > 0 && !slices.ContainsFunc(slices.Collect(maps.Keys(want)), func(p string) bool { return strings.HasPrefix(t.ID, p) }) {
			continue
		}
		out = append(out, t)
	}
	return client.TaskListResult{Items: out}, nil
}

func (f *fakeClient) TaskInspect(_ context.Context, id string, _ client.TaskInspectOptions) (client.TaskInspectResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down != nil {
		return client.TaskInspectResult{}, f.down
	}
	f.swarm.calls["task"]++
	t, ok := f.swarm.tasks[id]
	if !ok {
		return client.TaskInspectResult{}, cerrdefs.ErrNotFound.WithMessage("no such task: " + id)
	}
	return client.TaskInspectResult{Task: t}, nil
}

func (f *fakeClient) swarmCalls() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.swarm.calls)
}

func (f *fakeClient) lastTaskFilters() client.Filters {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.swarm.taskFilters
}

// editSwarm changes the fake Swarm under its lock.
func (f *fakeClient) editSwarm(edit func(s *fakeSwarm)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	edit(f.swarm)
}

func fakeService(id, name string, labels, ctrLabels map[string]string) swarm.Service {
	s := swarm.Service{ID: id}
	s.Spec.Name = name
	s.Spec.Labels = labels
	s.Spec.TaskTemplate.ContainerSpec = &swarm.ContainerSpec{Labels: ctrLabels}
	return s
}

func fakeNode(id, host string) swarm.Node {
	n := swarm.Node{ID: id}
	n.Description.Hostname = host
	n.Status.State = swarm.NodeStateReady
	n.Spec.Availability = swarm.NodeAvailabilityActive
	return n
}

// fakeTask is a running task with one address per overlay network
// (name → IPv4).
type fakeTask struct {
	id, service, node string
	slot              int
	nets              map[string]string
	created           time.Time
}

func (t fakeTask) task() swarm.Task {
	st := swarm.Task{ID: t.id, ServiceID: t.service, NodeID: t.node, Slot: t.slot,
		DesiredState: swarm.TaskStateRunning}
	st.CreatedAt = t.created
	st.Status.State = swarm.TaskStateRunning
	st.Status.ContainerStatus = &swarm.ContainerStatus{ContainerID: "c-" + t.id}
	st.Spec.ContainerSpec = &swarm.ContainerSpec{}
	for _, name := range slices.Sorted(maps.Keys(t.nets)) {
		var a swarm.NetworkAttachment
		a.Network.ID = "id-" + name
		a.Network.Spec.Name = name
		a.Addresses = []netip.Prefix{netip.PrefixFrom(netip.MustParseAddr(t.nets[name]), 24)}
		st.NetworksAttachments = append(st.NetworksAttachments, a)
	}
	return st
}

// proxyOn puts the proxy's own container on these networks (name → IPv4)
// and names it through TIERLB_CONTAINER_ID's stand-in, docker.container_id.
func (f *fakeClient) proxyOn(nets map[string]string) string {
	const id = "0000000000000000000000000000000000000000000000000000000000000001"
	r := fakeCtr{id: id, name: "tierlb", nets: nets, created: time.Unix(1, 0)}.inspect()
	f.set(r)
	return id
}

func healthcheck(test ...string) *container.HealthConfig { return &container.HealthConfig{Test: test} }

func slotName(service string, slot int, task string) string {
	return service + "." + strconv.Itoa(slot) + "." + task
}

// TestFakeSwarmFiltersLikeTheEngine holds the fake to what the provider
// relies on from a manager: TaskList applies the service and desired-state
// filters and fails on a service that does not exist, and TaskInspect of a
// gone task is a not-found error. A fake
// that ignored them would let the Swarm tests pass over wrong filters.
func TestFakeSwarmFiltersLikeTheEngine(t *testing.T) {
	f := newFakeClient().withSwarm()
	f.editSwarm(func(s *fakeSwarm) {
		s.tasks["t1"] = swarm.Task{ID: "t1", ServiceID: "web", DesiredState: swarm.TaskStateRunning}
		s.tasks["t2"] = swarm.Task{ID: "t2", ServiceID: "web", DesiredState: swarm.TaskStateShutdown}
		s.tasks["t3"] = swarm.Task{ID: "t3", ServiceID: "db", DesiredState: swarm.TaskStateRunning}
		s.services["web"], s.services["db"] = swarm.Service{ID: "web"}, swarm.Service{ID: "db"}
	})
	ids := func(t *testing.T, opts client.TaskListOptions) []string {
		res, err := f.TaskList(t.Context(), opts)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, task := range res.Items {
			out = append(out, task.ID)
		}
		return out
	}
	tests := []struct {
		name    string
		filters client.Filters
		want    []string
	}{
		{"no filter", nil, []string{"t1", "t2", "t3"}},
		{"service", make(client.Filters).Add("service", "web"), []string{"t1", "t2"}},
		{"service and desired state", make(client.Filters).Add("service", "web").Add("desired-state", "running"), []string{"t1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ids(t, client.TaskListOptions{Filters: tt.filters}); !slices.Equal(got, tt.want) {
				t.Errorf("tasks %v, want %v", got, tt.want)
			}
		})
	}
	if _, err := f.TaskList(t.Context(), client.TaskListOptions{Filters: make(client.Filters).Add("service", "web", "gone")}); !cerrdefs.IsNotFound(err) {
		t.Errorf("list naming a gone service: %v, want a not-found error", err)
	}
	if _, err := f.TaskInspect(t.Context(), "gone", client.TaskInspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("inspect of a gone task: %v, want a not-found error", err)
	}
}
