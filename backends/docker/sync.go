package docker

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/tierlb/tierlb/backends"
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
	opts := client.ContainerListOptions{}
	if !anySelector(sels) {
		// Without selectors only tierlb.service containers can be replicas,
		// so the daemon filters; with them every running one is a candidate.
		opts.Filters = make(client.Filters).Add("label", p.cfg.labelPrefix()+".service")
	}
	lctx, cancel := context.WithTimeout(ctx, apiTimeout)
	list, err := p.cli.ContainerList(lctx, opts)
	cancel()
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	var ids []string
	for _, s := range list.Items {
		if p.sw.on && s.Labels[taskIDLabel] != "" {
			continue // a Swarm task: found through the Swarm API, on every node
		}
		if p.candidate(s.Labels, sels) {
			ids = append(ids, s.ID)
		}
	}
	fresh, err := p.inspectAll(ctx, ids)
	if err != nil {
		return err
	}
	for id, c := range fresh {
		if old := p.ctrs[id]; old != nil && old.StartedAt == c.StartedAt {
			c.Stopping = old.Stopping
		}
	}
	p.ctrs = fresh
	if p.sw.on {
		if err := p.relistSwarm(ctx); err != nil {
			return err
		}
	}
	p.publish()
	return nil
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
		if len(s.Selector) > 0 && s.matches(svc, all) {
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
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	res, err := p.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("inspect container %.12s: %w", id, err)
	}
	c, running := fromInspect(res.Container, p.cfg.labelPrefix())
	if !running {
		return nil, nil
	}
	return c, nil
}

// logDrains logs, once each, the replicas that a publish took out of or put
// back into rotation (stop, pause, unpause). It runs after the sink has the
// new specs, so a "backend draining" line means no new connection goes there.
func (p *Provider) logDrains(service string, old, specs []backends.Spec) {
	was := make(map[string]string, len(old))
	for _, sp := range old {
		was[sp.ID] = sp.Drain
	}
	for _, sp := range specs {
		before, known := was[sp.ID]
		switch {
		case sp.Drain != "" && before == "":
			p.log.Info("backend draining", "service", service, "backend", sp.ID, "reason", sp.Drain)
		case sp.Drain == "" && known && before != "":
			p.log.Info("backend back in rotation", "service", service, "backend", sp.ID, "was", before)
		}
	}
}

// publish computes the view and hands the sink what changed: declarations
// first, so a label-declared service exists before its backends arrive.
func (p *Provider) publish() {
	all := slices.Collect(maps.Values(p.ctrs))
	all = slices.AppendSeq(all, maps.Values(p.sw.tasks))
	r := reach{me: p.me, prefix: p.cfg.labelPrefix(), restrict: p.cfg.Networks, bridges: p.bridges}
	v := buildView(p.cfg, p.selectors(), r, all)

	if !p.synced || !slices.EqualFunc(v.decls, p.declared, equalDecl) {
		p.sink.DeclareServices(v.decls)
		p.declared = v.decls
	}
	for _, name := range slices.Sorted(maps.Keys(v.specs)) {
		specs := v.specs[name]
		if old, ok := p.published[name]; p.synced && ok && slices.Equal(old, specs) {
			continue
		}
		p.sink.UpdateBackends(name, specs)
		p.log.Debug("backends updated", "service", name, "count", len(specs))
		p.logDrains(name, p.published[name], specs)
	}
	p.published = v.specs
	p.synced = true

	health := make(map[string]string, len(p.ctrs)+len(p.sw.tasks))
	for id, c := range p.ctrs {
		health[id] = c.Health
	}
	for _, t := range p.sw.tasks {
		if t.ID != "" {
			health[t.ID] = t.Health
		}
	}
	unrouted := map[string]bool{}
	routed := map[string]bool{}
	for _, e := range v.explain { // by name: a task not started yet has no container ID
		if e.Routed {
			routed[e.Name] = true
		} else {
			unrouted[e.Name] = true
		}
	}
	n := 0
	for id := range unrouted {
		if !routed[id] {
			n++
		}
	}
	p.metrics.setUnrouted(n)
	p.mu.Lock()
	p.explain = v.explain
	p.health = health
	p.mu.Unlock()
}

func equalDecl(a, b LabelService) bool {
	return a.Name == b.Name && a.Listen == b.Listen && a.Container == b.Container &&
		maps.Equal(a.Settings, b.Settings) && slices.Equal(a.Conflicts, b.Conflicts)
}
