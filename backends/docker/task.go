package docker

import (
	"fmt"
	"maps"
	"net/netip"
	"strconv"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/swarm"
)

// taskInfo places a Swarm task; a record (ctr) with a taskInfo stands for a
// task, which may run on any node, rather than for a local container.
type taskInfo struct {
	ID        string
	ServiceID string
	Service   string // the Swarm service's name
	NodeID    string
	Node      string // the node's hostname
	Slot      int    // replica number; 0 for a global service
	// Wait, when set, says why the task cannot take connections yet (its
	// state is not running).
	Wait string
	// Drain, when set, says why the task must take no new connections:
	// its desired state left running, or its node is down or drained.
	Drain string
	// Leaving is set once the desired state has left running: Swarm never
	// sets it back, so only the task's end remains to be seen.
	Leaving bool
	// The Swarm store's versions of the task, its service and its node
	// the record was built from (0: unknown); see reusable.
	Version, ServiceVersion, NodeVersion uint64
}

// serviceLabels are the labels tierlb reads for a service's tasks: the
// task containers' labels overlaid by the service's own (deploy.labels in
// a stack file), which win.
func serviceLabels(svc swarm.Service) map[string]string {
	out := map[string]string{}
	if cs := svc.Spec.TaskTemplate.ContainerSpec; cs != nil {
		maps.Copy(out, cs.Labels)
	}
	maps.Copy(out, svc.Spec.Labels)
	return out
}

// taskName is the name Docker gives the task's container: SERVICE.SLOT.TASK
// for a replica, SERVICE.NODE.TASK for a global service's task.
func taskName(service string, t *taskRow) string {
	if t.Slot > 0 {
		return service + "." + strconv.Itoa(t.Slot) + "." + t.ID
	}
	return service + "." + t.NodeID + "." + t.ID
}

// taskPast says whether a task state comes after running: the task is
// gone for routing, whatever its desired state.
func taskPast(s swarm.TaskState) bool {
	switch s {
	case swarm.TaskStateComplete, swarm.TaskStateShutdown, swarm.TaskStateFailed,
		swarm.TaskStateRejected, swarm.TaskStateRemove, swarm.TaskStateOrphaned:
		return true
	}
	return false
}

// fromTask builds the record of one task of svc; ok is false when the task
// is finished (nothing to route or explain). Labels are the service's (see
// serviceLabels). A task without a running container has Wait set.
func fromTask(t *taskRow, svc swarm.Service, labels map[string]string, nodes map[string]swarm.Node, prefix string) (c *ctr, ok bool) {
	if taskPast(t.Status.State) {
		return nil, false
	}
	name := svc.Spec.Name
	c = &ctr{
		Name:    taskName(name, t),
		Created: unixNano(t.CreatedAt),
		Labels:  newLabelSet(labels),
		Health:  string(container.NoHealthcheck),
		Task: &taskInfo{
			ID: t.ID, ServiceID: t.ServiceID, Service: name, NodeID: t.NodeID, Slot: t.Slot,
			Version: t.Version.Index, ServiceVersion: svc.Version.Index,
		},
	}
	if cs := t.Status.ContainerStatus; cs != nil {
		c.ID = cs.ContainerID
	}
	// Swarm holds a task with a HEALTHCHECK in "starting" until the check
	// passes and fails it when the check fails, so running means healthy.
	if cs := t.Spec.ContainerSpec; cs != nil && cs.Healthcheck != nil && !noHealthcheck(cs.Healthcheck.Test) {
		c.Health = string(container.Healthy)
	}
	var exposed []int
	if es := svc.Spec.EndpointSpec; es != nil {
		for _, p := range es.Ports {
			if p.Protocol == "tcp" || p.Protocol == "" {
				exposed = append(exposed, int(p.TargetPort))
			}
		}
	}
	c.run = newRunFacts(t.ID, "", exposed) // one task is one run of one container
	for _, a := range t.NetworksAttachments {
		if a.Network.Spec.Ingress {
			continue // the routing mesh's network: tierlb replaces it
		}
		var ip netip.Addr
		for _, pfx := range a.Addresses {
			if addr := pfx.Addr(); addr.Is4() || !ip.IsValid() {
				ip = addr
				if addr.Is4() {
					break
				}
			}
		}
		c.Endpoints = append(c.Endpoints, newEndpoint(a.Network.Spec.Name, a.Network.ID, ip))
	}
	sortEndpoints(c.Endpoints)
	c.labels = parse(prefix, labels)

	ti := c.Task
	if n, known := nodes[t.NodeID]; known {
		ti.Node, ti.NodeVersion = n.Description.Hostname, n.Version.Index
		switch {
		case n.Status.State != swarm.NodeStateReady:
			ti.Drain = fmt.Sprintf("node %s is %s", ti.Node, n.Status.State)
		case n.Spec.Availability == swarm.NodeAvailabilityDrain:
			ti.Drain = fmt.Sprintf("node %s is drained", ti.Node)
		}
	}
	if ti.Node == "" {
		ti.Node = t.NodeID
	}
	if t.DesiredState != swarm.TaskStateRunning {
		ti.Drain = fmt.Sprintf("task desired state is %s", t.DesiredState)
		ti.Leaving = true
	}
	if t.Status.State != swarm.TaskStateRunning {
		ti.Wait = fmt.Sprintf("task state is %s, not running", t.Status.State)
		if t.Status.Err != "" {
			ti.Wait += ": " + t.Status.Err
		}
	}
	return c, true
}

func noHealthcheck(test []string) bool {
	return len(test) > 0 && test[0] == "NONE"
}
