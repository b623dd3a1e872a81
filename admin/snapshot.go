package admin

import (
	"fmt"
	"slices"
	"time"

	"github.com/tierlb/tierlb/backends"
)

// ServiceStatus is one element of GET /api/v1/services.
type ServiceStatus struct {
	Name     string   `json:"name"`
	Listen   string   `json:"listen"`
	Protocol string   `json:"protocol"` // tcp or udp
	SNI      []string `json:"sni,omitempty"`
	Balance  string   `json:"balance"`
	// Backends are the service's backends the request's filter selects.
	Backends []BackendStatus `json:"backends"`
	// States counts every backend of the service by state (up, down,
	// draining, maint; all four always present), whatever the filter.
	States map[string]int `json:"states"`
	// ActiveConnections sums the open connections of every backend.
	ActiveConnections int64 `json:"active_connections"`
	// Rates are over the latest history sample; null until tierlb has
	// taken two.
	Rates *Rates `json:"rates"`
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
	// Rates are over the latest history sample; null until tierlb has
	// taken two.
	Rates *Rates `json:"rates"`
}

// CheckResult is one health probe's outcome.
type CheckResult struct {
	// Result is ok or fail, as in tierlb_health_checks_total.
	Result string    `json:"result"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// snapshot reads the services and backends f selects. Every selected
// service is listed with its state counts and rates; of the backends
// selected across them, in order, only those at positions [from, to) are
// built (the status page's page), and matched says how many there are. The
// slices are never nil so the JSON shows [] rather than null. A service the
// filter names that does not exist is an error.
func snapshot(s Services, h *History, f filter, from, to int) (out []ServiceStatus, matched int, err error) {
	out = []ServiceStatus{}
	matched, err = eachService(s, h, f, from, to, func(svc ServiceStatus) error {
		out = append(out, svc)
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return out, matched, nil
}

// eachService is snapshot one service at a time: fn gets each selected
// service's status as soon as it is built, so that a caller writing them out
// never holds more than one (the API at 10,000 backends held them all, and
// their JSON twice: 19 MB of heap that Go then kept resident). A service the
// filter names that does not exist is an error before fn is called at all;
// an error from fn stops the walk and is returned.
func eachService(s Services, h *History, f filter, from, to int, fn func(ServiceStatus) error) (matched int, err error) {
	infos := list(s)
	if f.service != "" && !slices.ContainsFunc(infos, func(i ServiceInfo) bool { return i.Name == f.service }) {
		return 0, fmt.Errorf("service %q not found", f.service)
	}
	for _, info := range infos {
		if !f.selectsService(info.Name) {
			continue
		}
		svc := ServiceStatus{
			Name: info.Name, Listen: info.Listen, Protocol: info.Protocol, SNI: info.SNI, Backends: []BackendStatus{},
			States: map[string]int{}, Rates: h.serviceRates(info.Name),
		}
		for _, st := range allStates {
			svc.States[st.String()] = 0
		}
		if svc.Protocol == "" {
			svc.Protocol = "tcp"
		}
		if info.Set != nil {
			svc.Balance = string(info.Set.Policy())
			for _, b := range info.Set.Backends() {
				st, reason := b.State()
				svc.States[st.String()]++
				svc.ActiveConnections += b.Active()
				if !f.selectsBackend(b.ID(), b.Address(), st) {
					continue
				}
				if matched >= from && matched < to {
					bs := backendStatusIn(b, st, reason)
					bs.Rates = h.backendRates(info.Name, bs.ID)
					svc.Backends = append(svc.Backends, bs)
				}
				matched++
			}
		}
		if err := fn(svc); err != nil {
			return matched, err
		}
	}
	return matched, nil
}

// allStates are the backend states, in the order the page shows them.
var allStates = [...]backends.State{backends.StateUp, backends.StateDown, backends.StateDraining, backends.StateMaint}

// backendStatus reads b now, for an action's answer.
func backendStatus(b *backends.Backend) BackendStatus {
	st, reason := b.State()
	return backendStatusIn(b, st, reason)
}

// backendStatusIn reads b's counters; st and reason are its state, read once
// by the caller.
func backendStatusIn(b *backends.Backend, st backends.State, reason string) BackendStatus {
	sp := b.Spec()
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
