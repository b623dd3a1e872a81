package docker

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
)

// containerIDInPath matches the 64-hex container ID in the paths Docker
// bind-mounts into every container (/var/lib/docker/containers/<id>/hostname)
// and in cgroup paths (/docker/<id>, docker-<id>.scope). It and hexPrefix
// are compiled when first used: compiled at init they were most of the
// package's init cost (64 KB, 25 KB of it kept) in every process, Docker
// discovery on or off.
var containerIDInPath = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(?:/containers/|/docker/|docker-)([0-9a-f]{64})(?:[/.\s]|$)`)
})

// idFromMountinfo returns the first container ID found in a mountinfo file.
func idFromMountinfo(data []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if m := containerIDInPath().FindSubmatch(sc.Bytes()); m != nil {
			return string(m[1])
		}
	}
	return ""
}

var hexPrefix = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9a-f]{12,64}$`) })

// findSelf works out which container the proxy runs in: the explicit ID
// (config, then TIERLB_CONTAINER_ID), then the ID in /proc/self/mountinfo,
// then HOSTNAME as an ID prefix. Found nowhere means tierlb is on the host.
// An explicit ID that does not exist is an error, not a silent fallback.
func (p *Provider) findSelf(ctx context.Context) (*self, error) {
	explicit, source := p.cfg.ContainerID, "docker.container_id"
	if explicit == "" {
		explicit, source = p.getenv("TIERLB_CONTAINER_ID"), "TIERLB_CONTAINER_ID"
	}
	if explicit != "" {
		me, err := p.inspectSelf(ctx, explicit)
		if err != nil {
			return nil, fmt.Errorf("own container %s (from %s): %w", explicit, source, err)
		}
		return me, nil
	}
	if data, err := p.readFile("/proc/self/mountinfo"); err == nil {
		if id := idFromMountinfo(data); id != "" {
			me, err := p.inspectSelf(ctx, id)
			if err == nil {
				return me, nil
			}
			if !cerrdefs.IsNotFound(err) {
				return nil, fmt.Errorf("own container %s (from /proc/self/mountinfo): %w", id, err)
			}
			// Another engine's container: docker-in-docker, or a Swarm
			// task on a worker reaching a manager (see selfFromTask).
			p.sw.foreignID = id
		}
	}
	if h := p.getenv("HOSTNAME"); hexPrefix().MatchString(h) {
		me, err := p.inspectSelf(ctx, h)
		switch {
		case err == nil && strings.HasPrefix(me.ID, h):
			return me, nil
		case err != nil && !cerrdefs.IsNotFound(err):
			return nil, fmt.Errorf("own container %s (from HOSTNAME): %w", h, err)
		}
	}
	return &self{OnHost: true}, nil
}

// maxNetNSHops bounds following network_mode "container:<id>": Docker
// itself refuses to join a container that joins another, so one hop is
// what exists; a few more cost nothing and stop a loop.
const maxNetNSHops = 4

// inspectSelf reads the proxy container's networks. A container started
// with network_mode "container:<id>" (Compose's "service:holder") has no
// networks of its own: it is on its holder's, in the holder's network
// namespace, so those are read instead.
func (p *Provider) inspectSelf(ctx context.Context, id string) (*self, error) {
	r, err := p.inspectContainer(ctx, id)
	if err != nil {
		return nil, err
	}
	me := &self{ID: r.ID, Name: strings.TrimPrefix(r.Name, "/")}
	for hops := 0; r.HostConfig != nil && r.HostConfig.NetworkMode.IsContainer(); hops++ {
		holder := r.HostConfig.NetworkMode.ConnectedContainer()
		if hops == maxNetNSHops {
			return nil, fmt.Errorf("network mode of %s: more than %d containers joined one into another", me.Name, maxNetNSHops)
		}
		if r, err = p.inspectContainer(ctx, holder); err != nil {
			return nil, fmt.Errorf("container %s whose network namespace %s joins: %w", holder, me.Name, err)
		}
		me.NetNS, me.NetNSName = r.ID, strings.TrimPrefix(r.Name, "/")
	}
	if r.HostConfig != nil && r.HostConfig.NetworkMode == "host" {
		me.OnHost = true // the host's stack: bridges are reachable as from the host
	}
	if r.NetworkSettings != nil {
		for name, ep := range r.NetworkSettings.Networks {
			if ep != nil {
				me.Networks = append(me.Networks, newEndpoint(name, ep.NetworkID, ep.IPAddress))
			}
		}
		sortEndpoints(me.Networks)
	}
	return me, nil
}

// owns reports whether a network event about container cid changes the
// proxy's networks: its own container's, or its holder's.
func (m *self) owns(cid string) bool {
	return cid != "" && (cid == m.ID || cid == m.NetNS)
}

func (m *self) String() string {
	switch {
	case m.Task != "":
		return fmt.Sprintf("in Swarm task %s on another node, on networks [%s]", m.Task, networkNames(m.Networks))
	case m.ID == "":
		return "on the host (not in a container): every bridge network is reachable"
	}
	where := fmt.Sprintf("in container %s (%.12s)", m.Name, m.ID)
	if m.NetNS != "" {
		where += fmt.Sprintf(" in the network namespace of %s (%.12s)", m.NetNSName, m.NetNS)
	}
	if m.OnHost {
		return where + " with host networking: every bridge network is reachable"
	}
	return fmt.Sprintf("%s on networks [%s]", where, networkNames(m.Networks))
}
