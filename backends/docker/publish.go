package docker

import (
	"context"
	"log/slog"
	"maps"
	"slices"

	"github.com/tierlb/tierlb/backends"
)

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
		p.logChanges(name, p.published[name], specs)
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

// logChanges logs, once each, the replicas that a publish took out of or
// put back into rotation (stop, pause, unpause), and at debug level the
// ones it added or removed. It runs after the sink has the new specs, so a
// "backend draining" line means no new connection goes there.
func (p *Provider) logChanges(service string, old, specs []backends.Spec) {
	was := make(map[string]string, len(old))
	for _, sp := range old {
		was[sp.ID] = sp.Drain
	}
	debug := p.synced && p.log.Enabled(context.Background(), slog.LevelDebug)
	for _, sp := range specs {
		before, known := was[sp.ID]
		if !known && debug {
			p.log.Debug("backend added", "service", service, "backend", sp.ID, "address", sp.Address)
		}
		switch {
		case sp.Drain != "" && before == "":
			p.log.Info("backend draining", "service", service, "backend", sp.ID, "reason", sp.Drain)
		case sp.Drain == "" && known && before != "":
			p.log.Info("backend back in rotation", "service", service, "backend", sp.ID, "was", before)
		}
		delete(was, sp.ID)
	}
	if debug {
		for id := range was {
			p.log.Debug("backend removed", "service", service, "backend", id)
		}
	}
}

// equalDecl says whether a declaration is unchanged, so that the sink hears
// of declarations only when one does change.
func equalDecl(a, b LabelService) bool {
	return a.Name == b.Name && a.Listen == b.Listen && a.Container == b.Container &&
		maps.Equal(a.Settings, b.Settings) && slices.Equal(a.Conflicts, b.Conflicts)
}
