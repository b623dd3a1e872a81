package docker

import (
	"maps"
	"strings"
)

// publishSwarm publishes what the last task polls changed: the records
// they replaced or removed (swarmState.changed), not every record.
func (p *Provider) publishSwarm() { p.publishChanged(map[string]bool{}) }

// withSwarmChanges adds the tasks changed since the last publish to the
// records a publish looks at, and forgets them: a full publish (changed
// nil) looks at them all anyway.
func (p *Provider) withSwarmChanges(changed map[string]bool) map[string]bool {
	if changed != nil && len(p.sw.changed) > 0 {
		changed = maps.Clone(changed)
		maps.Copy(changed, p.sw.changed)
	}
	p.sw.changed = nil
	return changed
}

// record is the record named by ref (see ctr.ref): a Swarm task's or a
// container's; nil when there is none.
func (p *Provider) record(ref string) *ctr {
	if id, ok := strings.CutPrefix(ref, "task:"); ok {
		return p.sw.tasks[id]
	}
	return p.ctrs[ref]
}
