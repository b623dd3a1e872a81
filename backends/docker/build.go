package docker

import (
	"cmp"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strings"

	"github.com/tierlb/tierlb/backends"
)

// view is everything the provider publishes, computed from its records in
// one pass so that specs, declarations and explanations always agree.
type view struct {
	specs   map[string][]backends.Spec // by service, for every known service
	decls   []LabelService             // sorted by name
	explain []Explanation              // sorted by name, then service
}

// membership is one service a container is a replica of.
type membership struct {
	service      string
	port         int
	dockerHealth bool
}

// buildView applies labels, selectors, lifecycle and address rules to the
// records. It is a pure function of its inputs. publish computes the same
// view a record at a time (publish.go); a test holds the two together.
func buildView(cfg Config, sels []ServiceSelector, r reach, ctrs []*ctr) view {
	slices.SortFunc(ctrs, byName)
	v := view{specs: map[string][]backends.Spec{}}
	configured := map[string]bool{}
	for _, s := range sels {
		configured[s.Name] = true
		v.specs[s.Name] = nil
	}
	decls, warnings := declareServices(cfg, configured, slices.Values(ctrs))
	declared := map[string]LabelService{}
	for _, d := range decls {
		declared[d.Name] = d
		v.specs[d.Name] = nil
	}
	v.decls = decls

	for _, c := range ctrs {
		ex, specs := routeContainer(cfg, sels, configured, declared, r, warnings[c.ref()], c)
		v.explain = append(v.explain, ex...)
		for _, s := range specs {
			v.specs[s.service] = append(v.specs[s.service], s.spec)
		}
	}
	return v
}

// serviceSpec is a container's backend in one service.
type serviceSpec struct {
	service string
	spec    backends.Spec
}

// routeContainer is one container's part of the view: its explanations, one
// per service it is a replica of (or one saying why it is none), and its
// backends. It depends on nothing but its arguments.
func routeContainer(cfg Config, sels []ServiceSelector, configured map[string]bool, declared map[string]LabelService,
	r reach, warnings []string, c *ctr) ([]Explanation, []serviceSpec) {
	base := Explanation{Container: c.ID, Name: c.Name, Warnings: slices.Clone(warnings)}
	if t := c.Task; t != nil {
		base.Task, base.Node, base.Slot = t.ID, t.Node, t.Slot
	}
	for _, u := range c.labels.Unknown {
		base.Warnings = append(base.Warnings, "unknown label "+u+" ignored")
	}
	mems, why := memberships(cfg, sels, configured, declared, c)
	if len(mems) == 0 {
		e := base
		e.Service, e.Reason = c.labels.Service, why
		return []Explanation{e}, nil
	}
	var specs []serviceSpec
	explain := make([]Explanation, 0, len(mems))
	for _, m := range mems {
		e := base
		e.Service = m.service
		spec, reason := routeOne(c, m, r, cfg.labelPrefix())
		e.Network, e.Address = spec.Network, spec.Address
		if reason == "" {
			e.Routed = true
			e.Reason = spec.Drain
			specs = append(specs, serviceSpec{m.service, spec})
		} else {
			e.Reason = reason
		}
		explain = append(explain, e)
	}
	return explain, specs
}

// byName orders records by container name, then ID: the order of every
// list the provider publishes.
func byName(a, b *ctr) int {
	return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.ID, b.ID))
}

// memberships lists the services a container is a replica of, or says why
// it is a replica of none. Label errors and opt-out apply to all of them.
func memberships(cfg Config, sels []ServiceSelector, configured map[string]bool, declared map[string]LabelService, c *ctr) ([]membership, string) {
	l := c.labels
	prefix := cfg.labelPrefix()
	if c.labels.err != nil {
		return nil, c.labels.err.Error()
	}
	if l.Enable < 0 {
		return nil, prefix + ".enable=false"
	}
	var mems []membership
	for _, s := range sels {
		if s.matches(l.Service, c.Labels.get) {
			mems = append(mems, membership{service: s.Name, port: s.Port, dockerHealth: s.DockerHealth})
		}
	}
	if len(mems) > 0 {
		if l.Service == "" && l.Enable <= 0 && !cfg.ExposedByDefault {
			return nil, fmt.Sprintf("not exposed: selected by service %s, but it has no %s.service label or %s.enable=true and docker.exposed_by_default is false",
				mems[0].service, prefix, prefix)
		}
		return mems, ""
	}
	switch {
	case l.Service == "":
		return nil, fmt.Sprintf("no %s.service label and no configured selector matches", prefix)
	case configured[l.Service]:
		if slices.ContainsFunc(sels, func(s ServiceSelector) bool { return s.Name == l.Service && s.StaticOnly }) {
			return nil, fmt.Sprintf("service %s is configured with static backends only (no docker block)", l.Service)
		}
		return nil, fmt.Sprintf("service %s is configured, but its docker selector does not match this container", l.Service)
	}
	if d, ok := declared[l.Service]; ok {
		return []membership{{service: d.Name, dockerHealth: d.Settings["health.type"] == "docker"}}, ""
	}
	if l.Listen != "" && !cfg.LabelServices {
		return nil, fmt.Sprintf("service %s is not configured, and %s.listen is ignored because docker.label_services is false", l.Service, prefix)
	}
	return nil, fmt.Sprintf("service %s is not configured and no replica declares it with a %s.listen label", l.Service, prefix)
}

// routeOne turns a replica into a Spec, or says why it is not routed.
func routeOne(c *ctr, m membership, r reach, prefix string) (backends.Spec, string) {
	if c.Task != nil && c.Task.Wait != "" {
		return backends.Spec{}, c.Task.Wait
	}
	if m.dockerHealth && c.hasHealthcheck() && c.Health != "healthy" {
		return backends.Spec{}, "docker health is " + c.Health + " (health type docker routes only healthy containers)"
	}
	port, why := choosePort(m.port, c, prefix)
	if why != "" {
		return backends.Spec{}, why
	}
	network, addr, why := chooseAddress(c, port, r)
	if why != "" {
		return backends.Spec{Network: network}, why
	}
	return specOf(c, c.Stopping, c.Paused, network, addr), ""
}

// specOf is a routed replica's Spec: its address on network, and the
// record's facts (stopping and paused as given: a route's snapshot of
// them). A route keeps only network and address and makes its specs again
// with this, so both ways give the same Spec.
func specOf(c *ctr, stopping, paused bool, network, addr string) backends.Spec {
	s := backends.Spec{
		ID:        c.Name,
		Address:   addr,
		Network:   network,
		Container: c.ID,
		Weight:    c.labels.Weight,
		Priority:  c.labels.Priority,
	}
	if t := c.Task; t != nil {
		s.Node, s.Slot = t.Node, t.Slot
	}
	switch {
	case stopping:
		s.Drain = "container stopping"
	case paused:
		s.Drain = "container paused"
	case c.Task != nil && c.Task.Drain != "":
		s.Drain = c.Task.Drain
	}
	return s
}

// declareServices finds the services declared by tierlb.listen labels. The
// oldest replica's labels win; disagreeing replicas are reported on the
// declaration and as warnings on their own explanations.
func declareServices(cfg Config, configured map[string]bool, ctrs iter.Seq[*ctr]) ([]LabelService, map[string][]string) {
	warnings := map[string][]string{}
	if !cfg.LabelServices {
		return nil, warnings
	}
	groups := map[string][]*ctr{}
	for c := range ctrs {
		l := c.labels
		if l.err != nil || l.Enable < 0 || l.Service == "" || l.Listen == "" {
			continue
		}
		if configured[l.Service] {
			warnings[c.ref()] = append(warnings[c.ref()], fmt.Sprintf("%s.listen ignored: service %s is declared in the config", cfg.labelPrefix(), l.Service))
			continue
		}
		groups[l.Service] = append(groups[l.Service], c)
	}
	var decls []LabelService
	for _, name := range slices.Sorted(maps.Keys(groups)) {
		g := groups[name]
		slices.SortFunc(g, older)
		win := g[0]
		d := LabelService{Name: name, Listen: win.labels.Listen, Settings: maps.Clone(win.labels.Settings), Container: win.Name}
		for _, c := range g[1:] {
			diff := settingsDiff(cfg.labelPrefix(), win, c)
			if diff == "" {
				continue
			}
			msg := fmt.Sprintf("%s disagrees with the oldest replica %s (%s); %s's labels are used", c.Name, win.Name, diff, win.Name)
			d.Conflicts = append(d.Conflicts, msg)
			warnings[c.ref()] = append(warnings[c.ref()], msg)
		}
		decls = append(decls, d)
	}
	return decls, warnings
}

// settingsDiff describes how c's service-level labels differ from win's.
func settingsDiff(prefix string, win, c *ctr) string {
	a, b := win.labels, c.labels
	var diffs []string
	if a.Listen != b.Listen {
		diffs = append(diffs, fmt.Sprintf("%s.listen=%s, not %s", prefix, b.Listen, a.Listen))
	}
	keys := slices.Sorted(maps.Keys(a.Settings))
	for k := range b.Settings {
		if _, ok := a.Settings[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		av, aok := a.Settings[k]
		bv, bok := b.Settings[k]
		switch {
		case aok && bok && av != bv:
			diffs = append(diffs, fmt.Sprintf("%s.%s=%s, not %s", prefix, k, bv, av))
		case aok && !bok:
			diffs = append(diffs, fmt.Sprintf("no %s.%s (oldest has %s)", prefix, k, av))
		case !aok && bok:
			diffs = append(diffs, fmt.Sprintf("%s.%s=%s, which the oldest does not set", prefix, k, bv))
		}
	}
	return strings.Join(diffs, ", ")
}
