package backends

// prepareRoundRobin builds the smooth weighted round-robin schedule when the
// weights differ; equal weights need only the rotation counter.
func (p *Pool) prepareRoundRobin() {
	p.schedule = nil
	if len(p.members) < 2 {
		return
	}
	equal := true
	for _, w := range p.weights[1:] {
		if w != p.weights[0] {
			equal = false
			break
		}
	}
	if equal {
		return
	}
	// TODO(issue 4): smooth weighted schedule.
}

// orderRoundRobin rotates through the members with one atomic add: the value
// returned by Add is this connection's slot, so concurrent accepts never get
// the same backend twice in a row.
func (p *Pool) orderRoundRobin(dst []*Backend) []*Backend {
	n := len(p.members)
	start := int((p.rotation.Add(1) - 1) % uint64(n))
	for i := 0; i < n && len(dst) < cap(dst); i++ {
		b := p.members[(start+i)%n]
		if p.available(b) {
			dst = append(dst, b)
		}
	}
	return dst
}
