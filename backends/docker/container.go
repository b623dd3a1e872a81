package docker

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unique"

	"github.com/moby/moby/api/types/container"
)

// endpoint is one network a container is attached to.
type endpoint struct {
	net unique.Handle[netName] // one per network, shared by its containers
	IP  netip.Addr             // IPv4 when there is one, else the global IPv6
}

// netName names a network: its name, as the container's inspect output
// keys it, and its ID ("" when the engine does not say).
type netName struct{ name, id string }

func newEndpoint(network, networkID string, ip netip.Addr) endpoint {
	return endpoint{net: unique.Make(netName{network, networkID}), IP: ip}
}

// Network is the name of the endpoint's network.
func (e endpoint) Network() string { return e.netName().name }

// NetworkID is the ID of the endpoint's network, "" when unknown.
func (e endpoint) NetworkID() string { return e.netName().id }

func (e endpoint) netName() netName {
	if e.net == (unique.Handle[netName]{}) {
		return netName{}
	}
	return e.net.Value()
}

// ctr is the provider's record of one running container: what inspect said,
// plus the lifecycle facts only events tell (a stop in progress).
//
// It fills the 144-byte size class, its bools together at the end: a
// record built from the list (every container at start) knows nothing of
// what only an inspect says, and keeps a nil run instead of 56 bytes of
// empty fields.
type ctr struct {
	ID        string
	Name      string
	Created   int64 // UnixNano; 0 when unknown
	Labels    labelSet
	Endpoints []endpoint // sorted by network name: never map order
	// Health is the Docker health status: "none" without a HEALTHCHECK,
	// else "starting", "healthy" or "unhealthy".
	Health string
	// Task is set when the record stands for a Swarm task (see task.go).
	Task *taskInfo
	// StopAt is the engine's time (UnixNano) of the kill or stop event that
	// set Stopping, to tell whether a later inspect shows the same run.
	StopAt int64
	// run is what an inspect says of the container's run; nil when
	// nothing (see StartedAt, StopSignal, Exposed).
	run *runFacts

	// labels are the tierlb labels, parsed once (a container's labels
	// never change) and shared by the records whose tierlb labels are the
	// same (see labelCache).
	labels *parsedLabels

	Paused bool
	// Stopping is set by a kill/stop event and cleared by start: Docker
	// still says running while the stop grace period runs.
	Stopping bool
	// FromList is set when the record was built from the container list
	// rather than an inspect: StartedAt and StopSignal are unknown.
	FromList bool
}

// runFacts are the facts of a container's run that the list does not
// show (an API 1.41 list shows published ports only).
type runFacts struct {
	startedAt  string
	stopSignal string
	exposed    []int
}

// newRunFacts returns the facts, nil when there are none.
func newRunFacts(startedAt, stopSignal string, exposed []int) *runFacts {
	if startedAt == "" && stopSignal == "" && len(exposed) == 0 {
		return nil
	}
	return &runFacts{startedAt: startedAt, stopSignal: stopSignal, exposed: exposed}
}

// StartedAt is when the run started, as the engine wrote it; a new value
// means the container was restarted. "" when unknown.
func (c *ctr) StartedAt() string {
	if c.run == nil {
		return ""
	}
	return c.run.startedAt
}

// StopSignal is the container's configured stop signal ("" = SIGTERM).
func (c *ctr) StopSignal() string {
	if c.run == nil {
		return ""
	}
	return c.run.stopSignal
}

// Exposed lists the container's exposed TCP ports, ascending.
func (c *ctr) Exposed() []int {
	if c.run == nil {
		return nil
	}
	return c.run.exposed
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

// containerRow is the part of a listed container (GET /containers/json)
// tierlb reads. The rest of a row (ports, mounts, host config, every
// endpoint's settings) is most of its 1 KB: decoding into this instead of
// container.Summary leaves a list of 10,000 containers a few kilobytes of
// garbage at a time rather than 60 MB.
type containerRow struct {
	ID              string `json:"Id"`
	Names           []string
	Created         int64 // Unix seconds
	Labels          map[string]string
	State           container.ContainerState
	Status          string
	Health          *struct{ Status container.HealthStatus } // API 1.52
	NetworkSettings *struct{ Networks map[string]*endpointRow }
}

// endpointRow is the part of a network endpoint, in a list row or an
// inspect, tierlb reads.
type endpointRow struct {
	NetworkID         string
	IPAddress         netip.Addr
	GlobalIPv6Address netip.Addr
}

// endpointsOf is a container's endpoints by network name, each at its
// IPv4 address, else its global IPv6 one.
func endpointsOf(nets map[string]*endpointRow) []endpoint {
	var eps []endpoint
	for name, ep := range nets {
		if ep == nil {
			continue
		}
		ip := ep.IPAddress
		if !ip.IsValid() {
			ip = ep.GlobalIPv6Address
		}
		eps = append(eps, newEndpoint(name, ep.NetworkID, ip))
	}
	sortEndpoints(eps)
	return eps
}

// fromRow builds a record from the container list, which says all that
// routing needs but the start time, the stop signal and the exposed ports
// (an API 1.41 list shows published ports only); ok is false when the
// container is not running.
func fromRow(r *containerRow, prefix string) (c *ctr, ok bool) {
	if r.State != container.StateRunning && r.State != container.StatePaused {
		return nil, false
	}
	c = &ctr{
		ID:       r.ID,
		Created:  r.Created * int64(time.Second),
		Labels:   newLabelSet(r.Labels),
		Paused:   r.State == container.StatePaused,
		Health:   listHealth(r),
		FromList: true,
	}
	for _, n := range r.Names { // "/name", and "/other/alias" for each legacy link
		if n = strings.TrimPrefix(n, "/"); !strings.Contains(n, "/") {
			c.Name = n
			break
		}
	}
	if r.NetworkSettings != nil {
		c.Endpoints = endpointsOf(r.NetworkSettings.Networks)
	}
	c.labels = parse(prefix, r.Labels)
	return c, true
}

// listHealth reads a listed container's health: its Health field (API
// 1.52), else the "(healthy)" its Status ends with.
func listHealth(r *containerRow) string {
	if r.Health != nil && r.Health.Status != "" {
		return string(r.Health.Status)
	}
	switch {
	case strings.HasSuffix(r.Status, "(healthy)"):
		return string(container.Healthy)
	case strings.HasSuffix(r.Status, "(unhealthy)"):
		return string(container.Unhealthy)
	case strings.HasSuffix(r.Status, "(health: starting)"):
		return string(container.Starting)
	}
	return string(container.NoHealthcheck)
}

// sameFacts says whether a list-built record says what rec says about
// everything routing reads that can change while a container runs, so that
// rec (and its cached route) can stay.
func sameFacts(rec, listed *ctr) bool {
	return rec.Name == listed.Name && rec.Paused == listed.Paused && rec.Health == listed.Health &&
		slices.Equal(rec.Endpoints, listed.Endpoints)
}

// sameRun says whether an inspected record is the run of the container
// that old, stopping, stood for: the same start, or (old from the list)
// a start before the stop began. A restart since clears the stop.
func sameRun(old, fresh *ctr) bool {
	if !old.FromList {
		return old.StartedAt() == fresh.StartedAt()
	}
	started, err := time.Parse(time.RFC3339Nano, fresh.StartedAt())
	return err == nil && old.StopAt > 0 && started.UnixNano() < old.StopAt
}

func sortEndpoints(eps []endpoint) {
	slices.SortFunc(eps, func(a, b endpoint) int {
		return cmp.Or(strings.Compare(a.Network(), b.Network()), strings.Compare(a.NetworkID(), b.NetworkID()))
	})
}

// older orders containers oldest first, by ID on a tie, so the winner among
// disagreeing replicas never depends on list order.
func older(a, b *ctr) int {
	return cmp.Or(cmp.Compare(a.Created, b.Created), strings.Compare(a.ref(), b.ref()))
}

// unixNano is t in UnixNano, 0 for the zero time (which UnixNano leaves
// undefined).
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
