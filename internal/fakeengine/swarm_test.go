package fakeengine

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"
)

// startSwarm serves a Swarm manager of three nodes.
func startSwarm(t *testing.T) (*Engine, *client.Client) {
	t.Helper()
	e := New(Options{Port: 8080, Swarm: true, Nodes: 3})
	host, err := e.Listen(filepath.Join(t.TempDir(), "docker.sock"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Serve(ctx) }()
	cli, err := client.New(client.WithHost(host), client.WithAPIVersion(APIVersion))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cli.Close()
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return e, cli
}

// runningTasks lists tasks with the filters tierlb's discovery sends.
func runningTasks(t *testing.T, cli *client.Client, services ...string) []swarm.Task {
	t.Helper()
	res, err := cli.TaskList(t.Context(), client.TaskListOptions{Filters: make(client.Filters).Add("desired-state", "running").Add("service", services...)})
	if err != nil {
		t.Fatal(err)
	}
	return res.Items
}

func TestSwarmManager(t *testing.T) {
	e, cli := startSwarm(t)
	ctx := t.Context()
	info, err := cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sw := info.Info.Swarm
	if sw.LocalNodeState != swarm.LocalNodeStateActive || !sw.ControlAvailable || sw.NodeID != e.Nodes()[0].ID || sw.Nodes != 3 || sw.Managers != 1 {
		t.Fatalf("info's swarm: %+v", sw)
	}
	web, tasks, err := e.CreateService("web", 4, map[string]string{"tierlb.service": "web"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.CreateService("db", 1, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.CreateService("web", 1, nil); err == nil {
		t.Fatal("a second service named web was created")
	}

	svcs, err := cli.ServiceList(ctx, client.ServiceListOptions{Status: true, Filters: make(client.Filters).Add("label", "tierlb.service")})
	if err != nil || len(svcs.Items) != 1 || svcs.Items[0].ID != web.ID || svcs.Items[0].ServiceStatus.RunningTasks != 4 {
		t.Fatalf("services labelled tierlb.service: %+v, %v", svcs.Items, err)
	}
	got := runningTasks(t, cli, web.ID)
	if len(got) != 4 {
		t.Fatalf("%d tasks of web, want 4", len(got))
	}
	for i, tk := range got {
		a := tk.NetworksAttachments
		if len(a) != 1 || a[0].Network.Spec.Name != OverlayName || len(a[0].Addresses) != 1 || a[0].Addresses[0].Addr() != tasks[i].IP || a[0].Addresses[0].Bits() != 8 {
			t.Fatalf("task %d's attachments: %+v", i, a)
		}
		if tk.NodeID == sw.NodeID || tk.Slot != i+1 || tk.Status.State != swarm.TaskStateRunning {
			t.Fatalf("task %d: node %s slot %d state %s; want on a worker, slot %d, running", i, tk.NodeID, tk.Slot, tk.Status.State, i+1)
		}
	}
	// By name too, as the daemon resolves it; a service that does not
	// exist fails the whole list.
	if n := len(runningTasks(t, cli, "web", "db")); n != 5 {
		t.Fatalf("tasks of web and db by name: %d, want 5", n)
	}
	_, err = cli.TaskList(ctx, client.TaskListOptions{Filters: make(client.Filters).Add("service", web.ID, "gone")})
	if !cerrdefs.IsNotFound(err) {
		t.Fatalf("task list naming a missing service: %v, want not found", err)
	}
	nodes, err := cli.NodeList(ctx, client.NodeListOptions{Filters: make(client.Filters).Add("role", "worker")})
	if err != nil || len(nodes.Items) != 2 || nodes.Items[0].Status.State != swarm.NodeStateReady || nodes.Items[0].Spec.Availability != swarm.NodeAvailabilityActive {
		t.Fatalf("workers: %+v, %v", nodes.Items, err)
	}
	if _, err := cli.TaskInspect(ctx, tasks[0].ID, client.TaskInspectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.TaskInspect(ctx, "nosuchtask", client.TaskInspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Fatalf("inspect of a missing task: %v", err)
	}
	b := e.ResponseBytes()["GET /tasks"]
	t.Logf("task lists sent %d bytes (%d tasks)", b, 4+5)
	if per := b / 9; per < 1000 || per > 4000 {
		t.Errorf("%d bytes per task, want a real manager's 1-4 KB", per)
	}
}

func TestSwarmFilters(t *testing.T) {
	e, cli := startSwarm(t)
	if _, _, err := e.CreateService("web", 2, map[string]string{"tier": "front"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		list     func(client.Filters) (int, error)
		filters  client.Filters
		want     int
		badInput bool
	}{
		{"services by label", services(cli), make(client.Filters).Add("label", "tier=front"), 1, false},
		{"services by other label value", services(cli), make(client.Filters).Add("label", "tier=back"), 0, false},
		{"services by name prefix", services(cli), make(client.Filters).Add("name", "we"), 1, false},
		{"services by mode", services(cli), make(client.Filters).Add("mode", "global"), 0, false},
		{"services by bad mode", services(cli), make(client.Filters).Add("mode", "sometimes"), 0, true},
		{"services by unknown filter", services(cli), make(client.Filters).Add("desired-state", "running"), 0, true},
		{"tasks desired shutdown", tasks(cli), make(client.Filters).Add("desired-state", "shutdown"), 0, false},
		{"tasks by bad desired state", tasks(cli), make(client.Filters).Add("desired-state", "asleep"), 0, true},
		{"tasks by node hostname", tasks(cli), make(client.Filters).Add("node", "node-2"), 1, false},
		{"tasks by name", tasks(cli), make(client.Filters).Add("name", "web.2"), 1, false},
		{"tasks by unknown filter", tasks(cli), make(client.Filters).Add("mode", "replicated"), 0, true},
		{"nodes by role", nodes(cli), make(client.Filters).Add("role", "manager"), 1, false},
		{"nodes by name", nodes(cli), make(client.Filters).Add("name", "node-3"), 1, false},
		{"nodes by unknown filter", nodes(cli), make(client.Filters).Add("service", "web"), 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := tt.list(tt.filters)
			if tt.badInput {
				if !cerrdefs.IsInvalidArgument(err) {
					t.Fatalf("got %d, %v; want invalid argument", n, err)
				}
				return
			}
			if err != nil || n != tt.want {
				t.Fatalf("got %d, %v; want %d", n, err, tt.want)
			}
		})
	}
}

func services(cli *client.Client) func(client.Filters) (int, error) {
	return func(f client.Filters) (int, error) {
		r, err := cli.ServiceList(context.Background(), client.ServiceListOptions{Filters: f})
		return len(r.Items), err
	}
}

func tasks(cli *client.Client) func(client.Filters) (int, error) {
	return func(f client.Filters) (int, error) {
		r, err := cli.TaskList(context.Background(), client.TaskListOptions{Filters: f})
		return len(r.Items), err
	}
}

func nodes(cli *client.Client) func(client.Filters) (int, error) {
	return func(f client.Filters) (int, error) {
		r, err := cli.NodeList(context.Background(), client.NodeListOptions{Filters: f})
		return len(r.Items), err
	}
}

// TestSwarmOperations plays each operation and reads its effect and its
// events as tierlb would.
func TestSwarmOperations(t *testing.T) {
	e, cli := startSwarm(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	res := cli.Events(ctx, client.EventsListOptions{Filters: make(client.Filters).Add("type", "service", "node").Add("scope", "swarm")})
	var evs []events.Message
	next := func() events.Message {
		t.Helper()
		select {
		case m := <-res.Messages:
			evs = append(evs, m)
			return m
		case err := <-res.Err:
			t.Fatalf("event stream: %v", err)
		case <-ctx.Done():
			t.Fatal("no event")
		}
		return events.Message{}
	}
	// The subscription is live once an event comes through it.
	svc, first, err := e.CreateService("web", 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m := next(); m.Action != events.ActionCreate || m.Actor.ID != svc.ID || m.Actor.Attributes["name"] != "web" || m.Scope != "swarm" {
		t.Fatalf("create event %+v", m)
	}

	started, stopping, err := e.ScaleService("web", 3)
	if err != nil || len(started) != 0 || len(stopping) != 1 || stopping[0].Slot != 4 {
		t.Fatalf("scale down: %v %v %v", started, stopping, err)
	}
	if m := next(); m.Action != events.ActionUpdate || m.Actor.Attributes["replicas.old"] != "4" || m.Actor.Attributes["replicas.new"] != "3" {
		t.Fatalf("scale event %+v", m)
	}
	if n := len(runningTasks(t, cli, "web")); n != 3 {
		t.Fatalf("%d tasks desired running after scaling to 3", n)
	}
	r, err := cli.TaskInspect(ctx, stopping[0].ID, client.TaskInspectOptions{})
	if err != nil || r.Task.DesiredState != swarm.TaskStateShutdown || r.Task.Status.State != swarm.TaskStateRunning {
		t.Fatalf("scaled-down task: desired %s state %s, %v", r.Task.DesiredState, r.Task.Status.State, err)
	}
	if err := e.EndTask(stopping[0].ID); err != nil {
		t.Fatal(err)
	}
	if r, _ := cli.TaskInspect(ctx, stopping[0].ID, client.TaskInspectOptions{}); r.Task.Status.State != swarm.TaskStateShutdown {
		t.Fatalf("ended task's state %s", r.Task.Status.State)
	}

	if err := e.UpdateService("web", "updating"); err != nil {
		t.Fatal(err)
	}
	if m := next(); m.Actor.Attributes["updatestate.new"] != "updating" {
		t.Fatalf("update event %+v", m)
	}
	nt, err := e.ReplaceTask(first[0].ID)
	if err != nil || nt.Slot != first[0].Slot || nt.ID == first[0].ID {
		t.Fatalf("replacement %+v, %v", nt, err)
	}
	if _, err := e.ReplaceTask(first[0].ID); err == nil {
		t.Fatal("a task desired shutdown was replaced again")
	}
	if err := e.UpdateService("web", "completed"); err != nil {
		t.Fatal(err)
	}
	if m := next(); m.Actor.Attributes["updatestate.old"] != "updating" || m.Actor.Attributes["updatestate.new"] != "completed" {
		t.Fatalf("update end event %+v", m)
	}

	node := runningTasks(t, cli, "web")[0].NodeID
	stopping, started, err = e.DrainNode(node)
	if err != nil || len(stopping) == 0 || len(started) != len(stopping) {
		t.Fatalf("drain: %d stopping, %d started, %v", len(stopping), len(started), err)
	}
	if m := next(); m.Type != events.NodeEventType || m.Actor.ID != node || m.Actor.Attributes["availability.new"] != "drain" {
		t.Fatalf("node event %+v", m)
	}
	for _, tk := range runningTasks(t, cli, "web") {
		if tk.NodeID == node {
			t.Fatalf("task %s still desired running on the drained node", tk.ID)
		}
	}
	if n, _ := nodes(cli)(make(client.Filters).Add("id", node)); n != 1 {
		t.Fatal("drained node not listed")
	}

	gone, err := e.RemoveService("web")
	if err != nil || len(gone) == 0 {
		t.Fatalf("remove: %v", err)
	}
	if m := next(); m.Action != events.ActionRemove || m.Actor.ID != svc.ID {
		t.Fatalf("remove event %+v", m)
	}
	if _, err := cli.TaskInspect(ctx, gone[0].ID, client.TaskInspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Fatalf("task of a removed service: %v", err)
	}
	if n, _ := services(cli)(nil); n != 0 {
		t.Fatalf("%d services after the removal", n)
	}
}

// TestOverlayOnTheProxysContainer: a container connected to the overlay
// shows it in its inspect, as tierlb's own container in a stack does.
func TestOverlayOnTheProxysContainer(t *testing.T) {
	e, cli := startSwarm(t)
	c, err := e.Run("tierlb", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.ConnectOverlay(c.ID); err != nil {
		t.Fatal(err)
	}
	r, err := cli.ContainerInspect(t.Context(), c.ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for name, ep := range r.Container.NetworkSettings.Networks {
		names = append(names, fmt.Sprintf("%s=%s", name, ep.NetworkID[:4]))
	}
	slices.Sort(names)
	if want := []string{"fakenet=f4ce", OverlayName + "=0ver"}; !slices.Equal(names, want) {
		t.Fatalf("networks %v, want %v", names, want)
	}
	nets, err := cli.NetworkList(t.Context(), client.NetworkListOptions{Filters: make(client.Filters).Add("driver", "overlay")})
	if err != nil || len(nets.Items) != 1 || nets.Items[0].Scope != "swarm" {
		t.Fatalf("overlay networks %+v, %v", nets.Items, err)
	}
}
