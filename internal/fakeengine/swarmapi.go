package fakeengine

import (
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/swarm"
)

// The overlay's subnet as the records show it; the addresses in it are
// the tasks' loopback addresses, so its prefix is 127.0.0.0/8.
var overlaySubnet = netip.MustParsePrefix("127.0.0.0/8")

// The filters each Swarm list accepts, as the daemon's
// daemon/cluster/filters.go lists them: any other is a 400.
var (
	serviceFilterKeys = []string{"id", "label", "mode", "name"}
	taskFilterKeys    = []string{"id", "name", "label", "service", "node", "desired-state", "_up-to-date", "runtime"}
	nodeFilterKeys    = []string{"id", "label", "name", "node.label", "membership", "role"}
)

// serveSwarm answers the Swarm endpoints as a manager does.
func (e *Engine) serveSwarm(w http.ResponseWriter, r *http.Request, endpoint, id string) {
	args, err := parseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	switch endpoint {
	case "/services":
		if err := args.only(serviceFilterKeys...); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		if bad := slices.DeleteFunc(slices.Clone(args["mode"]), func(m string) bool { return m == "replicated" || m == "global" }); len(bad) > 0 {
			writeError(w, http.StatusBadRequest, "Invalid filter: 'mode'='"+bad[0]+"'")
			return
		}
		status, _ := strconv.ParseBool(r.URL.Query().Get("status"))
		out := []swarm.Service{}
		for _, sid := range e.svcOrder {
			s := e.services[sid]
			if args.prefixOf("id", s.ID) && args.prefixOf("name", s.Name) && args.anyOf("mode", "replicated") && args.matchLabels(s.Labels) {
				out = append(out, e.serviceRecord(s, status))
			}
		}
		writeJSON(w, out)
	case "/services/{id}":
		s := e.lookupService(id)
		if s == nil {
			writeError(w, http.StatusNotFound, "service "+id+" not found")
			return
		}
		writeJSON(w, e.serviceRecord(s, false))
	case "/tasks":
		e.serveTasks(w, args)
	case "/tasks/{id}":
		t := e.tasks[id]
		if t == nil {
			for _, tid := range e.taskOrder {
				if strings.HasPrefix(tid, id) {
					t = e.tasks[tid]
					break
				}
			}
		}
		if t == nil || id == "" {
			writeError(w, http.StatusNotFound, "task "+id+" not found")
			return
		}
		writeJSON(w, e.taskRecord(t))
	case "/nodes":
		if err := args.only(nodeFilterKeys...); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		out := []swarm.Node{}
		for _, n := range e.nodes {
			role := "worker"
			if n.Manager {
				role = "manager"
			}
			if args.prefixOf("id", n.ID) && args.prefixOf("name", n.Hostname) && args.anyOf("role", role) &&
				args.anyOf("membership", "accepted") && len(args["label"]) == 0 && len(args["node.label"]) == 0 {
				out = append(out, e.nodeRecord(n))
			}
		}
		writeJSON(w, out)
	case "/nodes/{id}":
		n := e.lookupNode(id)
		if n == nil {
			writeError(w, http.StatusNotFound, "node "+id+" not found")
			return
		}
		writeJSON(w, e.nodeRecord(n))
	}
}

// serveTasks is GET /tasks. As the daemon, it resolves each service and
// node filter to an ID first, so one that names no service fails the
// whole list with a 404; e.mu is held.
func (e *Engine) serveTasks(w http.ResponseWriter, args filterArgs) {
	if err := args.only(taskFilterKeys...); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	services := map[string]bool{}
	for _, ref := range args["service"] {
		s := e.lookupService(ref)
		if s == nil {
			writeError(w, http.StatusNotFound, "service "+ref+" not found")
			return
		}
		services[s.ID] = true
	}
	nodes := map[string]bool{}
	for _, ref := range args["node"] {
		n := e.lookupNode(ref)
		if n == nil {
			writeError(w, http.StatusNotFound, "node "+ref+" not found")
			return
		}
		nodes[n.ID] = true
	}
	for _, s := range args["desired-state"] {
		if !knownTaskState(s) {
			writeError(w, http.StatusBadRequest, "Invalid desired-state filter: '"+s+"'")
			return
		}
	}
	out := []swarm.Task{}
	for _, id := range e.taskOrder {
		t := e.tasks[id]
		switch {
		case len(services) > 0 && !services[t.ServiceID],
			len(nodes) > 0 && !nodes[t.NodeID],
			!args.prefixOf("id", t.ID),
			!args.prefixOf("name", t.Service+"."+strconv.Itoa(t.Slot)),
			!args.anyOf("desired-state", string(t.Desired)),
			!args.anyOf("runtime", "container"),
			len(args["label"]) > 0 && !args.matchLabels(nil):
			continue
		}
		out = append(out, e.taskRecord(t))
	}
	writeJSON(w, out)
}

// knownTaskState is the daemon's check of a desired-state value: any task
// state's name.
func knownTaskState(s string) bool {
	switch swarm.TaskState(strings.ToLower(s)) {
	case swarm.TaskStateNew, swarm.TaskStateAllocated, swarm.TaskStatePending, swarm.TaskStateAssigned,
		swarm.TaskStateAccepted, swarm.TaskStatePreparing, swarm.TaskStateReady, swarm.TaskStateStarting,
		swarm.TaskStateRunning, swarm.TaskStateComplete, swarm.TaskStateShutdown, swarm.TaskStateFailed,
		swarm.TaskStateRejected, swarm.TaskStateRemove, swarm.TaskStateOrphaned:
		return true
	}
	return false
}

// prefixOf says whether the key is absent or one of its values is a
// prefix of got: the daemon's id and name filters on Swarm objects.
func (a filterArgs) prefixOf(key, got string) bool {
	vals, ok := a[key]
	return !ok || slices.ContainsFunc(vals, func(v string) bool { return strings.HasPrefix(got, v) })
}

func meta(version uint64, created, updated time.Time) swarm.Meta {
	return swarm.Meta{Version: swarm.Version{Index: version}, CreatedAt: created, UpdatedAt: updated}
}

// The records below carry the fields a 20.10 manager fills for a
// `docker service create --network fakeoverlay --endpoint-mode dnsrr`
// service, so that what tierlb decodes per task is as large as what a
// real manager sends it (about 1.6 KB of JSON per task; a real manager sent 1.3 KB in
// this project's 3-node figures, see the README's Swarm mode).

func (e *Engine) containerSpec(s *Service) *swarm.ContainerSpec {
	return &swarm.ContainerSpec{Image: fakeImage + "@sha256:" + strings.Repeat("ab", 32), Init: new(bool),
		StopGracePeriod: new(time.Duration(10 * time.Second)), DNSConfig: &swarm.DNSConfig{},
		Isolation: container.IsolationDefault}
}

func (e *Engine) taskSpec(s *Service) swarm.TaskSpec {
	return swarm.TaskSpec{ContainerSpec: e.containerSpec(s),
		Resources:     &swarm.ResourceRequirements{Limits: &swarm.Limit{}, Reservations: &swarm.Resources{}},
		RestartPolicy: &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionAny, MaxAttempts: new(uint64)},
		Placement:     &swarm.Placement{Platforms: []swarm.Platform{{Architecture: "amd64", OS: "linux"}}},
		Networks:      []swarm.NetworkAttachmentConfig{{Target: overlayID, Aliases: []string{s.Name}}},
		ForceUpdate:   0, Runtime: swarm.RuntimeContainer}
}

func (e *Engine) serviceRecord(s *Service, status bool) swarm.Service {
	replicas := uint64(s.Replicas)
	out := swarm.Service{ID: s.ID, Meta: meta(s.version, s.Created, s.updated),
		Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: s.Name, Labels: s.Labels},
			TaskTemplate: e.taskSpec(s), Mode: swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}},
			UpdateConfig:   &swarm.UpdateConfig{Parallelism: 1, FailureAction: "pause", Monitor: 5 * time.Second, MaxFailureRatio: 0, Order: "stop-first"},
			RollbackConfig: &swarm.UpdateConfig{Parallelism: 1, FailureAction: "pause", Monitor: 5 * time.Second, MaxFailureRatio: 0, Order: "stop-first"},
			EndpointSpec:   &swarm.EndpointSpec{Mode: swarm.ResolutionModeDNSRR}},
		Endpoint: swarm.Endpoint{Spec: swarm.EndpointSpec{Mode: swarm.ResolutionModeDNSRR}}}
	if s.UpdateState != "" {
		out.UpdateStatus = &swarm.UpdateStatus{State: swarm.UpdateState(s.UpdateState), StartedAt: &s.updated, Message: "update " + s.UpdateState}
	}
	if status {
		st := &swarm.ServiceStatus{DesiredTasks: replicas}
		for _, t := range e.liveTasks(s.ID) {
			if t.State == swarm.TaskStateRunning {
				st.RunningTasks++
			}
		}
		out.ServiceStatus = st
	}
	return out
}

func (e *Engine) taskRecord(t *Task) swarm.Task {
	s := e.services[t.ServiceID]
	out := swarm.Task{ID: t.ID, Meta: meta(t.version, t.Created, t.updated), Spec: e.taskSpec(s),
		ServiceID: t.ServiceID, Slot: t.Slot, NodeID: t.NodeID, DesiredState: t.Desired,
		Status: swarm.TaskStatus{Timestamp: t.updated, State: t.State, Message: "started",
			ContainerStatus: &swarm.ContainerStatus{ContainerID: containerID("task/" + t.ID), PID: 4242}},
		NetworksAttachments: []swarm.NetworkAttachment{{Network: e.overlayRecord(), Addresses: []netip.Prefix{netip.PrefixFrom(t.IP, overlaySubnet.Bits())}}},
	}
	if t.State != swarm.TaskStateRunning {
		out.Status.Message, out.Status.ContainerStatus.PID, out.Status.ContainerStatus.ExitCode = "finished", 0, 143
	}
	return out
}

// overlayRecord is the overlay as a task's attachment embeds it.
func (e *Engine) overlayRecord() swarm.Network {
	ipam := &swarm.IPAMOptions{Driver: swarm.Driver{Name: "default"},
		Configs: []swarm.IPAMConfig{{Subnet: overlaySubnet, Gateway: gateway}}}
	return swarm.Network{ID: overlayID, Meta: meta(1, e.created, e.created),
		Spec: swarm.NetworkSpec{Annotations: swarm.Annotations{Name: OverlayName, Labels: map[string]string{"com.docker.stack.namespace": "fake"}},
			DriverConfiguration: &swarm.Driver{Name: "overlay"}, Attachable: true, IPAMOptions: ipam, Scope: "swarm"},
		DriverState: swarm.Driver{Name: "overlay", Options: map[string]string{"com.docker.network.driver.overlay.vxlanid_list": "4097"}},
		IPAMOptions: ipam}
}

func (e *Engine) nodeRecord(n *Node) swarm.Node {
	role := swarm.NodeRoleWorker
	if n.Manager {
		role = swarm.NodeRoleManager
	}
	out := swarm.Node{ID: n.ID, Meta: meta(n.version, e.created, n.updated),
		Spec: swarm.NodeSpec{Role: role, Availability: n.Availability},
		Description: swarm.NodeDescription{Hostname: n.Hostname, Platform: swarm.Platform{Architecture: "x86_64", OS: "linux"},
			Resources: swarm.Resources{NanoCPUs: 2e9, MemoryBytes: 4 << 30}, Engine: swarm.EngineDescription{EngineVersion: engineVersion}},
		Status: swarm.NodeStatus{State: n.State, Addr: "127.0.0.1"}}
	if n.Manager {
		out.ManagerStatus = &swarm.ManagerStatus{Leader: true, Reachability: swarm.ReachabilityReachable, Addr: "127.0.0.1:2377"}
	}
	return out
}

// swarmInfo is /info's Swarm part: an active manager, as Docker 20.10
// reports it; e.mu is held.
func (e *Engine) swarmInfo() swarm.Info {
	if !e.opts.Swarm {
		return swarm.Info{LocalNodeState: swarm.LocalNodeStateInactive}
	}
	mgr := e.nodes[0]
	managers := 0
	for _, n := range e.nodes {
		if n.Manager {
			managers++
		}
	}
	return swarm.Info{NodeID: mgr.ID, NodeAddr: "127.0.0.1", LocalNodeState: swarm.LocalNodeStateActive, ControlAvailable: true,
		RemoteManagers: []swarm.Peer{{NodeID: mgr.ID, Addr: "127.0.0.1:2377"}}, Nodes: len(e.nodes), Managers: managers,
		Cluster: &swarm.ClusterInfo{ID: swarmID("cluster", "fake"), Meta: meta(1, e.created, e.created),
			Spec: swarm.Spec{Annotations: swarm.Annotations{Name: "default"}}}}
}
