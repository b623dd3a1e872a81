package admin

import (
	"time"

	"github.com/tierlb/tierlb/backends"
)

// ServiceStatus is one element of GET /api/v1/services.
type ServiceStatus struct {
	Name     string          `json:"name"`
	Listen   string          `json:"listen"`
	Protocol string          `json:"protocol"` // tcp or udp
	SNI      []string        `json:"sni,omitempty"`
	Balance  string          `json:"balance"`
	Backends []BackendStatus `json:"backends"`
}

// BackendStatus is one backend of a ServiceStatus, read from the Backend's
// atomics at the time of the request.
type BackendStatus struct {
	// ID is the backend's name: the container name, or host:port for static
	// backends. It is the metrics' backend label and the {backend} of the
	// drain/ready/maint URLs.
	ID        string `json:"id"`
	Address   string `json:"address"`
	Network   string `json:"network"`
	Container string `json:"container"`
	// Node and Slot place a Swarm task (its node's hostname, its replica
	// number); absent for other backends.
	Node string `json:"node,omitempty"`
	Slot int    `json:"slot,omitempty"`
	// State is up, down, draining or maint; Reason says why.
	State    string `json:"state"`
	Reason   string `json:"reason"`
	Weight   int    `json:"weight"`
	Priority int    `json:"priority"`

	// ActiveConnections and TotalConnections count a UDP service's
	// sessions.
	ActiveConnections int64  `json:"active_connections"`
	TotalConnections  uint64 `json:"total_connections"`
	BytesToBackend    uint64 `json:"bytes_to_backend"`
	BytesToClient     uint64 `json:"bytes_to_client"`
	// ConnectErrors counts failed dials by reason: timeout, refused,
	// unreachable, other (all four always present).
	ConnectErrors map[string]uint64 `json:"connect_errors"`
	// LastCheck is the latest health probe; null before the first one or
	// when the service has no active health check.
	LastCheck *CheckResult `json:"last_check"`
}

// CheckResult is one health probe's outcome.
type CheckResult struct {
	// Result is ok or fail, as in tierlb_health_checks_total.
	Result string    `json:"result"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// snapshot reads every service and backend once. The slices are never nil so
// the JSON shows [] rather than null.
func snapshot(s Services) []ServiceStatus {
	infos := list(s)
	out := make([]ServiceStatus, 0, len(infos))
	for _, info := range infos {
		svc := ServiceStatus{Name: info.Name, Listen: info.Listen, Protocol: info.Protocol, SNI: info.SNI, Backends: []BackendStatus{}}
		if svc.Protocol == "" {
			svc.Protocol = "tcp"
		}
		if info.Set != nil {
			svc.Balance = string(info.Set.Policy())
			for _, b := range info.Set.Backends() {
				svc.Backends = append(svc.Backends, backendStatus(b))
			}
		}
		out = append(out, svc)
	}
	return out
}

func backendStatus(b *backends.Backend) BackendStatus {
	sp := b.Spec()
	st, reason := b.State()
	toBackend, toClient := b.Bytes()
	errs := b.ConnectErrors()
	bs := BackendStatus{
		ID:                sp.ID,
		Address:           sp.Address,
		Network:           sp.Network,
		Container:         sp.Container,
		Node:              sp.Node,
		Slot:              sp.Slot,
		State:             st.String(),
		Reason:            reason,
		Weight:            sp.Weight,
		Priority:          sp.Priority,
		ActiveConnections: b.Active(),
		TotalConnections:  b.Total(),
		BytesToBackend:    toBackend,
		BytesToClient:     toClient,
		ConnectErrors:     make(map[string]uint64, len(errs)),
	}
	for i, n := range errs {
		bs.ConnectErrors[backends.DialErrorReasons[i]] = n
	}
	if _, last := b.Health(); last != nil {
		bs.LastCheck = &CheckResult{Result: checkResult(last.OK), Reason: last.Reason, At: last.At}
	}
	return bs
}

func checkResult(ok bool) string {
	if ok {
		return "ok"
	}
	return "fail"
}
