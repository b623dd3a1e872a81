package admin

import "github.com/tierlb/tierlb/backends"

// ServiceInfo is what the admin server needs to know about one service.
type ServiceInfo struct {
	// Name is the service name (the metrics' service label).
	Name string
	// Listen is the address the service accepts on, as configured.
	Listen string
	// SNI lists the TLS server names routed to the service on a listen
	// address it shares with other services; empty otherwise.
	SNI []string
	// Protocol is tcp or udp; "" means tcp.
	Protocol string
	// Set owns the service's backends; nil is treated as no backends.
	Set *backends.Set
}

// Services lists the running services. It is called on every scrape and API
// request, so a reload that adds or removes services shows at once.
// Implementations must be safe for concurrent use.
type Services interface {
	Services() []ServiceInfo
}

// ServicesFunc adapts a function to Services.
type ServicesFunc func() []ServiceInfo

// Services calls f.
func (f ServicesFunc) Services() []ServiceInfo { return f() }

// ServiceList is a fixed list of services.
type ServiceList []ServiceInfo

// Services returns the list.
func (l ServiceList) Services() []ServiceInfo { return l }

// Explanation is one container seen by discovery, routed or not: what
// backends/docker.Explanation says, and the server names of its service.
type Explanation struct {
	// Container is the full container ID.
	Container string `json:"container"`
	// Name is the container name.
	Name string `json:"name"`
	// Service is the service the container belongs to, if any.
	Service string `json:"service"`
	// Task, Node and Slot place a Swarm task (task ID, node hostname,
	// replica number); absent for plain containers.
	Task string `json:"task,omitempty"`
	Node string `json:"node,omitempty"`
	Slot int    `json:"slot,omitempty"`
	// Network is the Docker network chosen to reach it.
	Network string `json:"network"`
	// Address is the host:port dialed.
	Address string `json:"address"`
	// Routed reports whether the container is a backend of Service.
	Routed bool `json:"routed"`
	// Reason says why it is not routed (or why it is draining).
	Reason string `json:"reason"`
	// Warnings are problems that do not stop routing, such as unknown
	// labels or label settings overruled by an older replica.
	Warnings []string `json:"warnings,omitempty"`
	// SNI lists the TLS server names routed to Service on a listen
	// address it shares with other services.
	SNI []string `json:"sni,omitempty"`
}

// list returns the services of s; a nil s has none.
func list(s Services) []ServiceInfo {
	if s == nil {
		return nil
	}
	return s.Services()
}
