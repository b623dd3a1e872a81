package docker

import (
	"cmp"
	"context"
	"fmt"
	"iter"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/tierlb/tierlb/backends"
)

// routes is the view the provider last published, kept per record, so
// that a publish after a few events recomputes only the records those
// events touched and hands the sink only the services they belong to: with
// 10,000 containers, a full rebuild per event burst would cost more than
// the events themselves. Every record's part is routeContainer's result,
// the same function buildView applies to all of them at once.
type routes struct {
	// key names the selectors, declarations and own networks the routes
	// were computed with; when it changes, every route is recomputed.
	key   string
	byRef map[string]*route
	// members lists, by service, the routes with a backend in it, in
	// buildView's order (byRoute), so that a publish after an event need
	// not sort a service's routes again.
	members map[string][]*route
	// sorted is false while a publish that starts from no routes adds
	// them all: it sorts each service once at the end rather than
	// inserting 10,000 routes one by one in order.
	sorted bool
	// unrouted counts the records routed in no service.
	unrouted int
	epoch    uint64
}

// route is one record's part of the view. It is never changed once made,
// but for epoch.
type route struct {
	c *ctr // its name and ID never change: a rename makes a new record
	// The record's mutable facts the route was computed with.
	stopping, paused bool
	health           string
	// in says where the record is routed. Its specs follow from in and the
	// facts above (see spec), so that the provider does not keep a copy of
	// every Spec beside the sink's.
	in    []routedIn
	notes *routeNotes // nil for nearly every replica
	epoch uint64      // the last publish that saw the record
}

// routedIn is a record's backend in one service.
type routedIn struct{ service, network, address string }

// routeNotes is what a route says beyond its specs.
type routeNotes struct {
	warnings []string
	// explain is nil when it says no more than the specs do (see
	// plainExplain).
	explain []Explanation
}

// spec is the record's backend b, as routeContainer made it.
func (rt *route) spec(b routedIn) backends.Spec {
	return specOf(rt.c, rt.stopping, rt.paused, b.network, b.address)
}

func (rt *route) warnings() []string {
	if rt.notes == nil {
		return nil
	}
	return rt.notes.warnings
}

// explanations returns the record's explanations: its own, or the ones its
// specs imply.
func (rt *route) explanations() []Explanation {
	if rt.notes != nil && rt.notes.explain != nil {
		return rt.notes.explain
	}
	return plainExplain(rt)
}

// plainExplain is what routeContainer says of a container (not a task)
// routed in every service it is a replica of, without warnings.
func plainExplain(rt *route) []Explanation {
	out := make([]Explanation, len(rt.in))
	for i, b := range rt.in {
		out[i] = Explanation{Container: rt.c.ID, Name: rt.c.Name, Service: b.service, Network: b.network,
			Address: b.address, Routed: true, Reason: rt.spec(b).Drain}
	}
	return out
}

// implied says whether ex is what plainExplain makes of specs.
// TestPublishAgreesWithBuildView holds the two together.
func implied(c *ctr, ex []Explanation, specs []serviceSpec) bool {
	if c.Task != nil || len(ex) != len(specs) {
		return false
	}
	for i, e := range ex {
		s := specs[i]
		if e.Container != c.ID || e.Name != c.Name || e.Task != "" || e.Node != "" || e.Slot != 0 ||
			e.Service != s.service || e.Network != s.spec.Network || e.Address != s.spec.Address ||
			!e.Routed || e.Reason != s.spec.Drain || len(e.Warnings) > 0 {
			return false
		}
	}
	return true
}

func (rt *route) routed() bool { return len(rt.in) > 0 }

// current says whether the route still describes the record. Swarm tasks
// change in place in more ways than containers do, so theirs are always
// recomputed.
func (rt *route) current(c *ctr, warnings []string) bool {
	return rt.c == c && c.Task == nil && rt.stopping == c.Stopping && rt.paused == c.Paused &&
		rt.health == c.Health && slices.Equal(rt.warnings(), warnings)
}

// publish computes the view from every record and hands the sink what
// changed; see publishChanged.
func (p *Provider) publish() { p.publishChanged(nil) }

// publishChanged computes the view and hands the sink what changed:
// backends first, then declarations, so that a label-declared service
// starts with the backends that declared it (the sink keeps the backends
// of a service it does not run yet) and never serves a moment with none.
// changed names the records (by ref) that may have changed
// since the last publish; nil means any may have, and every record is
// looked at.
func (p *Provider) publishChanged(changed map[string]bool) {
	changed = p.withSwarmChanges(changed)
	sels, selsGen := p.selectorsGen()
	if p.configured == nil || p.configuredGen != selsGen {
		p.configured, p.configuredGen = make(map[string]bool, len(sels)), selsGen
		for _, s := range sels {
			p.configured[s.Name] = true
		}
	}
	configured := p.configured
	// Declarations depend on the records with a listen label alone: a
	// batch that touched none of them leaves them as they were.
	if changed == nil || !p.synced || selsGen != p.declSels || p.touchesListen(changed) {
		p.declNew, p.declWarnings = declareServices(p.cfg, configured, p.records())
		p.declSels = selsGen
	}
	decls, warnings := p.declNew, p.declWarnings
	declsChanged := !p.synced || !slices.EqualFunc(decls, p.declared, equalDecl)
	if declsChanged {
		p.declared = decls
		p.declGen++
		p.declaredBy = make(map[string]LabelService, len(decls))
		for _, d := range decls {
			p.declaredBy[d.Name] = d
		}
	}
	declared := p.declaredBy
	r := reach{me: p.me, prefix: p.cfg.labelPrefix(), restrict: p.cfg.Networks, bridges: p.bridges}

	rs := &p.routes
	full := !p.synced || changed == nil
	affected := map[string]bool{}
	refresh := func(c *ctr) {
		ref, w := c.ref(), warnings[c.ref()]
		old := rs.byRef[ref]
		if old != nil && old.current(c, w) {
			old.epoch = rs.epoch
			return
		}
		if old != nil {
			rs.drop(ref, old, affected)
		}
		ex, specs := routeContainer(p.cfg, sels, configured, declared, r, w, c)
		rt := &route{c: c, stopping: c.Stopping, paused: c.Paused, health: c.Health, epoch: rs.epoch}
		if len(specs) > 0 {
			rt.in = make([]routedIn, len(specs))
			for i, s := range specs {
				rt.in[i] = routedIn{s.service, s.spec.Network, s.spec.Address}
			}
		}
		if len(w) > 0 || !implied(c, ex, specs) {
			rt.notes = &routeNotes{warnings: w, explain: ex}
		}
		rs.add(ref, rt, affected)
		if c.Task != nil && c.ID != "" {
			p.health[c.ID] = c.Health
		}
	}
	// Explain and ContainerHealth read the routes and health from other
	// goroutines.
	p.mu.Lock()
	if p.health == nil {
		p.health = map[string]string{}
	}
	if key := fmt.Sprintf("%d|%d|%s", selsGen, p.declGen, r.key()); key != rs.key || rs.byRef == nil {
		*rs = routes{key: key, byRef: map[string]*route{}, members: map[string][]*route{}, epoch: rs.epoch}
		full = true
	}
	if full {
		rs.epoch++
		for c := range p.records() {
			refresh(c)
		}
		for ref, rt := range rs.byRef {
			if rt.epoch != rs.epoch {
				rs.drop(ref, rt, affected)
				if id := rt.c.ID; id != "" && p.ctrs[id] == nil {
					delete(p.health, id)
				}
			}
		}
	} else {
		for ref := range changed {
			if c := p.record(ref); c != nil {
				refresh(c)
			} else if rt := rs.byRef[ref]; rt != nil {
				rs.drop(ref, rt, affected)
				delete(p.health, rt.c.ID)
			}
		}
	}
	if !rs.sorted {
		for _, m := range rs.members {
			slices.SortFunc(m, byRoute)
		}
		rs.sorted = true
	}
	unrouted := rs.unrouted
	p.mu.Unlock()

	if full {
		names := make([]string, 0, len(configured)+len(declared))
		names = slices.AppendSeq(names, maps.Keys(configured))
		names = slices.AppendSeq(names, maps.Keys(declared))
		slices.Sort(names)
		names = slices.Compact(names)
		published := make(map[string][]backends.Spec, len(names))
		for _, name := range names {
			old, ok := p.published[name]
			specs := rs.specs(name)
			published[name] = specs
			if !p.synced || !ok || !slices.Equal(old, specs) {
				p.update(name, old, specs)
			}
		}
		p.published = published
	} else {
		// The selectors and declarations of the last publish (else the
		// routes' key changed), so the same services: only the affected
		// may have new backends.
		for _, name := range slices.Sorted(maps.Keys(affected)) {
			old, ok := p.published[name]
			if !ok {
				continue // neither configured nor declared
			}
			if specs := rs.specs(name); !slices.Equal(old, specs) {
				p.published[name] = specs
				p.update(name, old, specs)
			}
		}
	}
	if declsChanged {
		p.sink.DeclareServices(decls)
	}
	p.synced = true
	p.metrics.setUnrouted(unrouted)
}

// touchesListen says whether a changed record carries a listen label, now
// or in its last route.
func (p *Provider) touchesListen(changed map[string]bool) bool {
	for ref := range changed {
		if c := p.record(ref); c != nil && c.labels.Listen != "" {
			return true
		}
		if rt := p.routes.byRef[ref]; rt != nil && rt.c.labels.Listen != "" {
			return true
		}
	}
	return false
}

// records yields every record: containers, then Swarm tasks.
func (p *Provider) records() iter.Seq[*ctr] {
	return func(yield func(*ctr) bool) {
		for _, c := range p.ctrs {
			if !yield(c) {
				return
			}
		}
		for _, c := range p.sw.tasks {
			if !yield(c) {
				return
			}
		}
	}
}

func (rs *routes) add(ref string, rt *route, affected map[string]bool) {
	rs.byRef[ref] = rt
	for i, b := range rt.in {
		if routedTwice(rt.in[:i], b.service) {
			continue
		}
		m := rs.members[b.service]
		at := len(m)
		if rs.sorted {
			at, _ = slices.BinarySearchFunc(m, rt, byRoute)
		}
		rs.members[b.service] = slices.Insert(m, at, rt)
		affected[b.service] = true
	}
	if !rt.routed() {
		rs.unrouted++
	}
}

func (rs *routes) drop(ref string, rt *route, affected map[string]bool) {
	delete(rs.byRef, ref)
	for i, b := range rt.in {
		if routedTwice(rt.in[:i], b.service) {
			continue
		}
		m := rs.members[b.service]
		at, found := -1, false
		if rs.sorted {
			at, found = slices.BinarySearchFunc(m, rt, byRoute)
		}
		if !found || m[at] != rt {
			at = slices.Index(m, rt)
		}
		if at >= 0 {
			m = slices.Delete(m, at, at+1)
		}
		if len(m) == 0 {
			delete(rs.members, b.service)
		} else {
			rs.members[b.service] = m
		}
		affected[b.service] = true
	}
	if !rt.routed() {
		rs.unrouted--
	}
}

// specs lists a service's backends in buildView's order: by container
// name, then ID.
func (rs *routes) specs(service string) []backends.Spec {
	rts := rs.members[service]
	if len(rts) == 0 {
		return nil
	}
	out := make([]backends.Spec, 0, len(rts))
	for _, rt := range rts {
		for _, b := range rt.in {
			if b.service == service {
				out = append(out, rt.spec(b))
			}
		}
	}
	return out
}

// byRoute orders routes by container name, then ID (byName), then task
// ID: a total order, as no two records share all three.
func byRoute(a, b *route) int {
	return cmp.Or(byName(a.c, b.c), strings.Compare(taskID(a.c), taskID(b.c)))
}

func taskID(c *ctr) string {
	if c.Task == nil {
		return ""
	}
	return c.Task.ID
}

// routedTwice says whether in (a route's backends before one in service)
// already has one in service: a route is a member of a service once.
func routedTwice(in []routedIn, service string) bool {
	return slices.ContainsFunc(in, func(b routedIn) bool { return b.service == service })
}

// explanations flattens the routes' explanations in buildView's order.
func explanations(rts []*route) []Explanation {
	rts = slices.Clone(rts)
	slices.SortFunc(rts, byRoute)
	var out []Explanation
	for _, rt := range rts {
		for _, e := range rt.explanations() {
			e.Warnings = slices.Clone(e.Warnings)
			out = append(out, e)
		}
	}
	return out
}

// key names everything reachable depends on, so that a change to the
// proxy's own networks recomputes every route.
func (r reach) key() string {
	var b strings.Builder
	if r.me != nil {
		fmt.Fprintf(&b, "%s|%t|%s", r.me.ID, r.me.OnHost, r.me.Task)
		for _, e := range r.me.Networks {
			fmt.Fprintf(&b, "|%s=%s", e.Network(), e.NetworkID())
		}
		if r.me.OnHost {
			for _, k := range slices.Sorted(maps.Keys(r.bridges)) {
				b.WriteString("|b=" + k)
			}
		}
	}
	return b.String()
}

// update hands the sink a service's new backends, and logs what changed.
func (p *Provider) update(name string, old, specs []backends.Spec) {
	p.sink.UpdateBackends(name, specs)
	p.log.Debug("backends updated", "service", name, "count", len(specs))
	p.logChanges(name, old, specs)
}

// logChanges logs, once each, the replicas that a publish took out of or
// put back into rotation (stop, pause, unpause), and at debug level the
// ones it added or removed. It runs after the sink has the new specs, so a
// "backend draining" line means no new connection goes there.
func (p *Provider) logChanges(service string, old, specs []backends.Spec) {
	// Without debug lines only the drained replicas of old matter: a
	// publish per event should not index every replica of the service.
	debug := p.synced && p.log.Enabled(context.Background(), slog.LevelDebug)
	var was map[string]string
	for _, sp := range old {
		if debug || sp.Drain != "" {
			if was == nil {
				was = make(map[string]string)
			}
			was[sp.ID] = sp.Drain
		}
	}
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
