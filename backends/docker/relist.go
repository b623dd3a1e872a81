package docker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// inspectWorkers bounds concurrent inspects during a relist.
const inspectWorkers = 4

// relist rebuilds every record from the engine: own container, bridge
// networks (on the host), containers. Lifecycle facts that only events
// carry (a stop in progress) survive for containers not restarted since.
func (p *Provider) relist(ctx context.Context) error {
	if err := p.refreshSelf(ctx); err != nil {
		return err
	}
	if p.me.OnHost {
		if err := p.refreshBridges(ctx); err != nil {
			return err
		}
	}
	sels := p.selectors()
	var f client.Filters
	if !anySelector(sels) {
		// Without selectors only tierlb.service containers can be replicas,
		// so the daemon filters; with them every running one is a candidate.
		f = make(client.Filters).Add("label", p.cfg.labelPrefix()+".service")
	}
	// The list says what routing needs: a container is inspected only when
	// it says too little: a label-declared service's replica (the oldest,
	// to the nanosecond, declares it), a stopping one (restarted since?), or
	// one without a port label (its exposed ports are not in the list). A
	// record the list confirms is kept as it is.
	var ids []string
	listed := make(map[string]*ctr, len(p.ctrs))
	err := p.containerList(ctx, f, func(r *containerRow) {
		if p.sw.on && r.Labels[taskIDLabel] != "" {
			return // a Swarm task: found through the Swarm API, on every node
		}
		if !p.candidate(r.Labels, sels) {
			return
		}
		if r.State == "" { // a list that leaves the state out says too little
			ids = append(ids, r.ID)
			return
		}
		c, running := fromRow(r, p.cfg.labelPrefix())
		old := p.ctrs[r.ID]
		if running {
			p.parsed.share(c, p.cfg.labelPrefix())
		}
		switch {
		case !running:
		case old != nil && old.Stopping, c.labels.Listen != "":
			ids = append(ids, r.ID)
		case old != nil && sameFacts(old, c):
			listed[r.ID] = old
		case c.labels.Port == 0:
			ids = append(ids, r.ID)
		default:
			listed[r.ID] = c
		}
	})
	if p.onList != nil {
		p.onList(err)
	}
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	fresh, err := p.inspectAll(ctx, ids)
	if err != nil {
		return err
	}
	for id, c := range fresh {
		if old := p.ctrs[id]; old != nil && old.Stopping && sameRun(old, c) {
			c.Stopping, c.StopAt = true, old.StopAt
		}
		listed[id] = c
	}
	p.ctrs = listed
	if p.sw.on {
		if err := p.relistSwarm(ctx); err != nil {
			return err
		}
	}
	p.publish()
	return nil
}

// containerList reads the running containers one row at a time (see
// streamList).
func (p *Provider) containerList(ctx context.Context, f client.Filters, visit func(*containerRow)) error {
	return streamList(ctx, p.raw, "/containers/json", f, "container", visit)
}

// refreshSelf finds the proxy's container the first time, then re-reads its
// networks; it logs where the proxy stands whenever that changes.
func (p *Provider) refreshSelf(ctx context.Context) error {
	var me *self
	var err error
	if p.me == nil || p.me.ID == "" {
		me, err = p.findSelf(ctx)
	} else {
		me, err = p.inspectSelf(ctx, p.me.ID)
		if err != nil {
			err = fmt.Errorf("own container %s: %w", p.me.ID, err)
		}
	}
	if err != nil {
		return err
	}
	if me.ID == "" && p.me != nil && p.me.Task != "" && p.sw.foreignID != "" {
		return nil // still the Swarm task found on another node; relistSwarm rereads it
	}
	if p.me == nil || p.me.String() != me.String() {
		p.log.Info("docker discovery runs " + me.String())
	}
	p.me = me
	return nil
}

func (p *Provider) refreshBridges(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	res, err := p.cli.NetworkList(ctx, client.NetworkListOptions{Filters: make(client.Filters).Add("driver", "bridge")})
	if err != nil {
		return fmt.Errorf("list bridge networks: %w", err)
	}
	p.bridges = map[string]bool{}
	for _, n := range res.Items {
		if n.Driver == "bridge" {
			p.bridges[n.ID], p.bridges[n.Name] = true, true
		}
	}
	return nil
}

// candidate says whether a container is worth inspecting: it carries a
// tierlb label or matches a configured selector.
func (p *Provider) candidate(all map[string]string, sels []ServiceSelector) bool {
	prefix := p.cfg.labelPrefix() + "."
	for k := range all {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	svc := all[prefix+"service"]
	for _, s := range sels {
		if len(s.Selector) > 0 && s.matches(svc, mapLabels(all)) {
			return true
		}
	}
	return false
}

func anySelector(sels []ServiceSelector) bool {
	return slices.ContainsFunc(sels, func(s ServiceSelector) bool { return len(s.Selector) > 0 })
}

// inspectAll inspects containers with a few workers; containers that are
// gone or not running are left out.
func (p *Provider) inspectAll(ctx context.Context, ids []string) (map[string]*ctr, error) {
	var (
		mu    sync.Mutex
		out   = make(map[string]*ctr, len(ids))
		first error
		wg    sync.WaitGroup
		next  = make(chan string)
	)
	for range min(inspectWorkers, len(ids)) {
		wg.Go(func() {
			for id := range next {
				c, err := p.inspect(ctx, id)
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				if c != nil {
					out[c.ID] = c
				}
				mu.Unlock()
			}
		})
	}
	for _, id := range ids {
		next <- id
	}
	close(next)
	wg.Wait()
	return out, first
}

// inspect reads one container; nil without error when it is gone or not
// running.
func (p *Provider) inspect(ctx context.Context, id string) (*ctr, error) {
	r, err := p.inspectContainer(ctx, id)
	if cerrdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("inspect container %.12s: %w", id, err)
	}
	c, running := fromInspect(r, p.cfg.labelPrefix())
	if !running {
		return nil, nil
	}
	p.parsed.share(c, p.cfg.labelPrefix())
	return c, nil
}
