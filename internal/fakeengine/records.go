package fakeengine

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

// The records below carry the fields a daemon fills for an ordinary
// `docker run -d --network fakenet` container, so that what tierlb decodes
// per container is as large as what a real engine sends it.

var (
	gateway = netip.MustParseAddr("127.0.0.1")
	fakeEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "REPLICA=1"}
)

// summary is a container as GET /containers/json lists it; e.mu is held.
func (e *Engine) summary(c *Container) container.Summary {
	s := container.Summary{
		ID: c.ID, Names: []string{"/" + c.Name}, Image: fakeImage, ImageID: "sha256:" + c.ID,
		Command: "/replica", Created: c.Created.Unix(), Labels: c.Labels,
		State: container.StateExited, Status: fmt.Sprintf("Exited (%d) %s ago", c.ExitCode, ago(c.FinishedAt)),
		Mounts: []container.MountPoint{},
		Ports:  []container.PortSummary{},
	}
	s.HostConfig.NetworkMode = NetworkName
	s.NetworkSettings = &container.NetworkSettingsSummary{Networks: e.endpoints(c)}
	if c.Running {
		s.State, s.Status = container.StateRunning, "Up "+ago(c.StartedAt)
	}
	if e.opts.Port > 0 {
		s.Ports = append(s.Ports, container.PortSummary{PrivatePort: uint16(e.opts.Port), Type: "tcp"})
	}
	return s
}

// inspect is a container as GET /containers/{id}/json shows it; e.mu is
// held.
func (e *Engine) inspect(c *Container) container.InspectResponse {
	state := &container.State{Status: container.StateExited, ExitCode: c.ExitCode,
		StartedAt: timestamp(c.StartedAt), FinishedAt: timestamp(c.FinishedAt)}
	if c.Running {
		state.Status, state.Running, state.Pid = container.StateRunning, true, 4242
	}
	cfg := &container.Config{Hostname: c.ID[:12], Env: fakeEnv, Cmd: []string{"/replica"}, Image: fakeImage,
		Labels: c.Labels, AttachStdout: true, AttachStderr: true}
	if e.opts.Port > 0 {
		cfg.ExposedPorts = network.PortSet{network.MustParsePort(strconv.Itoa(e.opts.Port) + "/tcp"): {}}
	}
	dir := "/var/lib/docker/containers/" + c.ID
	res := container.InspectResponse{
		ID: c.ID, Created: timestamp(c.Created), Path: "/replica", State: state, Image: "sha256:" + c.ID,
		ResolvConfPath: dir + "/resolv.conf", HostnamePath: dir + "/hostname", HostsPath: dir + "/hosts",
		LogPath: dir + "/" + c.ID + "-json.log", Name: "/" + c.Name, Driver: "overlay2", Platform: "linux",
		HostConfig: &container.HostConfig{NetworkMode: NetworkName, LogConfig: container.LogConfig{Type: "json-file"},
			RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled}},
		Mounts: []container.MountPoint{},
		Config: cfg,
		NetworkSettings: &container.NetworkSettings{SandboxID: c.ID, SandboxKey: "/var/run/docker/netns/" + c.ID[:12],
			Networks: e.endpoints(c)},
	}
	return res
}

// endpoints are the container's networks: the bridge, and the overlay
// once connected to it (at the same address: one listener answers both).
func (e *Engine) endpoints(c *Container) map[string]*network.EndpointSettings {
	eps := map[string]*network.EndpointSettings{NetworkName: e.endpoint(c)}
	if c.Overlay {
		ep := e.endpoint(c)
		ep.NetworkID = overlayID
		if ep.EndpointID != "" {
			ep.EndpointID = "0v" + c.ID[2:]
		}
		eps[OverlayName] = ep
	}
	return eps
}

// endpoint is the container's place on the network: an address while it
// runs, none when it is stopped, as the daemon shows it.
func (e *Engine) endpoint(c *Container) *network.EndpointSettings {
	ep := &network.EndpointSettings{NetworkID: networkID, Aliases: []string{c.Name}, DNSNames: []string{c.Name, c.ID[:12]}}
	if c.Running {
		ep.EndpointID = c.ID
		ep.Gateway = gateway
		ep.IPAddress = c.IP
		ep.IPPrefixLen = 8
	}
	return ep
}

func timestamp(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00Z"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// ago is the daemon's human duration in a list's Status.
func ago(t time.Time) string {
	d := time.Since(t)
	switch {
	case d < time.Second:
		return "Less than a second"
	case d < time.Minute:
		return fmt.Sprintf("%d seconds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d minutes", int(d.Minutes()))
	}
	return fmt.Sprintf("%d hours", int(d.Hours()))
}
