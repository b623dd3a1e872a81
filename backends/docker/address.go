package docker

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
)

// self is what the provider knows about the proxy's own place in Docker.
type self struct {
	// ID is the proxy's container ID; "" when tierlb runs on the host.
	ID   string
	Name string
	// NetNS is the container whose network namespace the proxy's joins
	// (network_mode "container:<id>"), "" when it has its own; NetNSName
	// is its name. Networks are then that container's.
	NetNS, NetNSName string
	// Networks are the proxy's own networks, sorted by name.
	Networks []endpoint
	// OnHost is true when the proxy is not in a container, or its container
	// uses the host's network stack: then every bridge network is reachable.
	OnHost bool
	// Task is set when the proxy was found as a Swarm task on another
	// node than the engine's: its networks are the task's overlays.
	Task string
}

// reach decides which networks the proxy can dial into.
type reach struct {
	me     *self
	prefix string // label prefix, for messages
	// restrict is docker.networks; empty allows all.
	restrict []string
	// bridges holds the IDs and names of bridge-driver networks, used only
	// when the proxy is on the host.
	bridges map[string]bool
}

// reachable says whether the proxy can dial the container's endpoint, and
// why not when it cannot.
func (r reach) reachable(e endpoint) (bool, string) {
	if len(r.restrict) > 0 && !slices.Contains(r.restrict, e.Network()) {
		return false, fmt.Sprintf("network %s is not in docker.networks [%s]", e.Network(), strings.Join(r.restrict, " "))
	}
	if r.me.OnHost {
		if r.bridges[e.NetworkID()] || r.bridges[e.Network()] {
			return true, ""
		}
		return false, fmt.Sprintf("network %s is not a bridge network, which tierlb on the host cannot reach", e.Network())
	}
	for _, own := range r.me.Networks {
		if (e.NetworkID() != "" && own.NetworkID() == e.NetworkID()) || (e.NetworkID() == "" && own.Network() == e.Network()) {
			return true, ""
		}
	}
	return false, fmt.Sprintf("the proxy is not on network %s (proxy networks: %s)", e.Network(), r.ownNames())
}

func (r reach) ownNames() string {
	if len(r.me.Networks) == 0 {
		return "none"
	}
	names := make([]string, len(r.me.Networks))
	for i, e := range r.me.Networks {
		names[i] = e.Network()
	}
	return strings.Join(names, " ")
}

// chooseAddress applies SPEC's address rules: the tierlb.network label when
// set, else the first network by name that the proxy shares with the
// container (and docker.networks allows). It never depends on map order.
func chooseAddress(c *ctr, port int, r reach) (network, addr, reason string) {
	if want := c.labels.Network; want != "" {
		e, ok := findNetwork(c, want)
		if !ok {
			return "", "", fmt.Sprintf("%s.network=%s but the container is not on that network (it is on %s)", r.prefix, want, networkNames(c.Endpoints))
		}
		if ok, why := r.reachable(e); !ok {
			return e.Network(), "", why
		}
		if !e.IP.IsValid() {
			return e.Network(), "", fmt.Sprintf("the container has no IP address on network %s", e.Network())
		}
		return e.Network(), joinHostPort(e, port), ""
	}
	var whys []string
	for _, e := range c.Endpoints { // sorted by name
		ok, why := r.reachable(e)
		if !ok {
			whys = append(whys, why)
			continue
		}
		if !e.IP.IsValid() {
			whys = append(whys, fmt.Sprintf("no IP address on network %s", e.Network()))
			continue
		}
		return e.Network(), joinHostPort(e, port), ""
	}
	if len(c.Endpoints) == 0 {
		return "", "", "the container is on no network"
	}
	return "", "", fmt.Sprintf("no network shared with the proxy: the container is on %s; %s",
		networkNames(c.Endpoints), strings.Join(whys, "; "))
}

// findNetwork finds the endpoint a tierlb.network label names; Compose
// prefixes network names with the project, so "app" also finds
// "<project>_app" for a container of that project.
func findNetwork(c *ctr, name string) (endpoint, bool) {
	for _, e := range c.Endpoints {
		if e.Network() == name {
			return e, true
		}
	}
	if proj, _ := c.Labels.get("com.docker.compose.project"); proj != "" {
		for _, e := range c.Endpoints {
			if e.Network() == proj+"_"+name {
				return e, true
			}
		}
	}
	return endpoint{}, false
}

func networkNames(eps []endpoint) string {
	if len(eps) == 0 {
		return "no network"
	}
	names := make([]string, len(eps))
	for i, e := range eps {
		names[i] = e.Network()
	}
	return strings.Join(names, " ")
}

func joinHostPort(e endpoint, port int) string {
	return net.JoinHostPort(e.IP.String(), strconv.Itoa(port))
}

// choosePort picks the port to dial: the service config's, else the
// tierlb.port label, else the container's only exposed TCP port.
func choosePort(cfgPort int, c *ctr, prefix string) (int, string) {
	switch {
	case cfgPort > 0:
		return cfgPort, ""
	case c.labels.Port > 0:
		return c.labels.Port, ""
	case len(c.Exposed()) == 1:
		return c.Exposed()[0], ""
	case len(c.Exposed()) == 0:
		return 0, fmt.Sprintf("no port: the service sets none, there is no %s.port label and the container exposes no TCP port", prefix)
	}
	ports := make([]string, len(c.Exposed()))
	for i, p := range c.Exposed() {
		ports[i] = strconv.Itoa(p)
	}
	return 0, fmt.Sprintf("no port: the container exposes %s; choose one with a %s.port label or the service's port", strings.Join(ports, ", "), prefix)
}
