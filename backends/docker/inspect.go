package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

// inspectRow is the part of a container's inspect (GET
// /containers/{id}/json) tierlb reads: what fromInspect, inspectSelf and
// ContainerHealth need. The rest (the container's whole config and host
// config, mounts, storage, every endpoint's settings) is most of its few
// kilobytes, which container.InspectResponse decodes into some 200
// allocations, once per container start in an event storm.
type inspectRow struct {
	ID      string `json:"Id"`
	Name    string // "/name"
	Created string // RFC 3339
	State   *struct {
		Running, Paused, Restarting bool
		StartedAt                   string
		Health                      *struct{ Status container.HealthStatus }
	}
	Config *struct {
		Labels       map[string]string
		StopSignal   string
		ExposedPorts network.PortSet
	}
	HostConfig      *struct{ NetworkMode container.NetworkMode }
	NetworkSettings *struct{ Networks map[string]*endpointRow }
}

// health is the container's Docker health status, "" when it has no
// HEALTHCHECK.
func (r *inspectRow) health() string {
	if r.State == nil || r.State.Health == nil {
		return ""
	}
	return string(r.State.Health.Status)
}

// fromInspect builds a record; ok is false when the container is not running
// (exited, created, dead), which the provider treats as gone.
func fromInspect(r *inspectRow, prefix string) (c *ctr, ok bool) {
	if r.State == nil || !r.State.Running || r.State.Restarting {
		return nil, false
	}
	c = &ctr{
		ID:     r.ID,
		Name:   strings.TrimPrefix(r.Name, "/"),
		Paused: r.State.Paused,
		Health: string(container.NoHealthcheck),
	}
	if t, err := time.Parse(time.RFC3339Nano, r.Created); err == nil {
		c.Created = unixNano(t)
	}
	if h := r.health(); h != "" {
		c.Health = h
	}
	var labels map[string]string
	var stopSignal string
	var exposed []int
	if r.Config != nil {
		labels = r.Config.Labels
		c.Labels = newLabelSet(labels)
		stopSignal = r.Config.StopSignal
		for p := range r.Config.ExposedPorts {
			if p.Proto() == "tcp" {
				exposed = append(exposed, int(p.Num()))
			}
		}
		slices.Sort(exposed)
		exposed = slices.Compact(exposed)
	}
	c.run = newRunFacts(r.State.StartedAt, stopSignal, exposed)
	if r.NetworkSettings != nil {
		c.Endpoints = endpointsOf(r.NetworkSettings.Networks)
	}
	c.labels = parse(prefix, labels)
	return c, true
}

// inspectContainer reads one container's inspect. A container the engine
// does not know is an error cerrdefs.IsNotFound reports, as the SDK's.
func (p *Provider) inspectContainer(ctx context.Context, id string) (*inspectRow, error) {
	id = strings.TrimSpace(id)
	if id == "" {
		return nil, classed{fmt.Errorf("inspect container: empty ID"), cerrdefs.ErrInvalidArgument}
	}
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	body, err := p.raw.GetBody(ctx, "/containers/"+id+"/json", nil)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	buf, _ := p.inspectBufs.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	r, err := decodeInspect(body, buf)
	if buf.Cap() <= maxPooledInspect {
		p.inspectBufs.Put(buf)
	}
	if err != nil {
		return nil, fmt.Errorf("inspect container %s: %w", id, err)
	}
	return r, nil
}

// maxPooledInspect bounds the buffers kept for inspects: a container with
// a huge environment should not pin its inspect's size in every pooled
// buffer.
const maxPooledInspect = 64 << 10

// decodeInspect reads an inspect body into buf, to its end (so that its
// connection is reused), and decodes it. Reading it whole into a reused
// buffer rather than through a json.Decoder saves the decoder's growing
// buffer: three quarters of an inspect's garbage.
func decodeInspect(body io.Reader, buf *bytes.Buffer) (*inspectRow, error) {
	buf.Reset()
	if _, err := buf.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	var r inspectRow
	if err := json.Unmarshal(buf.Bytes(), &r); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	return &r, nil
}
