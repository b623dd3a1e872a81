package docker

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
)

// endpoint is one network a container is attached to.
type endpoint struct {
	Network   string // name, as the container's inspect output keys it
	NetworkID string
	IP        netip.Addr // IPv4 when there is one, else the global IPv6
}

// ctr is the provider's record of one running container: what inspect said,
// plus the lifecycle facts only events tell (a stop in progress).
type ctr struct {
	ID        string
	Name      string
	Created   time.Time
	StartedAt string // a new value means the container was restarted
	Labels    map[string]string
	Endpoints []endpoint // sorted by network name: never map order
	Exposed   []int      // exposed TCP ports, ascending
	// StopSignal is the container's configured stop signal ("" = SIGTERM).
	StopSignal string
	// Health is the Docker health status: "none" without a HEALTHCHECK,
	// else "starting", "healthy" or "unhealthy".
	Health string
	Paused bool
	// Stopping is set by a kill/stop event and cleared by start: Docker
	// still says running while the stop grace period runs.
	Stopping bool
	// Task is set when the record stands for a Swarm task (see task.go).
	Task *taskInfo

	labels   labels // parsed once; labels never change on a container
	labelErr error
}

// ref names the record uniquely: its container ID, or its task ID for a
// Swarm task, which has no container before it starts.
func (c *ctr) ref() string {
	if c.Task != nil {
		return "task:" + c.Task.ID
	}
	return c.ID
}

func (c *ctr) hasHealthcheck() bool {
	return c.Health != "" && c.Health != string(container.NoHealthcheck)
}

// fromInspect builds a record; ok is false when the container is not running
// (exited, created, dead), which the provider treats as gone.
func fromInspect(r container.InspectResponse, prefix string) (c *ctr, ok bool) {
	if r.State == nil || !r.State.Running || r.State.Restarting {
		return nil, false
	}
	c = &ctr{
		ID:        r.ID,
		Name:      strings.TrimPrefix(r.Name, "/"),
		StartedAt: r.State.StartedAt,
		Paused:    r.State.Paused,
		Health:    string(container.NoHealthcheck),
	}
	c.Created, _ = time.Parse(time.RFC3339Nano, r.Created)
	if r.State.Health != nil && r.State.Health.Status != "" {
		c.Health = string(r.State.Health.Status)
	}
	if r.Config != nil {
		c.Labels = r.Config.Labels
		c.StopSignal = r.Config.StopSignal
		for p := range r.Config.ExposedPorts {
			if p.Proto() == "tcp" {
				c.Exposed = append(c.Exposed, int(p.Num()))
			}
		}
		slices.Sort(c.Exposed)
		c.Exposed = slices.Compact(c.Exposed)
	}
	if r.NetworkSettings != nil {
		for name, ep := range r.NetworkSettings.Networks {
			if ep == nil {
				continue
			}
			e := endpoint{Network: name, NetworkID: ep.NetworkID, IP: ep.IPAddress}
			if !e.IP.IsValid() {
				e.IP = ep.GlobalIPv6Address
			}
			c.Endpoints = append(c.Endpoints, e)
		}
		sortEndpoints(c.Endpoints)
	}
	c.labels, c.labelErr = parseLabels(prefix, c.Labels)
	return c, true
}

func sortEndpoints(eps []endpoint) {
	slices.SortFunc(eps, func(a, b endpoint) int {
		return cmp.Or(strings.Compare(a.Network, b.Network), strings.Compare(a.NetworkID, b.NetworkID))
	})
}

// older orders containers oldest first, by ID on a tie, so the winner among
// disagreeing replicas never depends on list order.
func older(a, b *ctr) int {
	return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.ref(), b.ref()))
}
