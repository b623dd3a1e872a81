package backends

// maxRanked is how many leading entries of a leastconn order are ranked by
// load; the rest (only with retries >= maxRanked) follow in rotation order.
// The ranking lives in fixed arrays on the stack so a pick never allocates.
const maxRanked = 8

// orderLeastConn puts the least loaded backends first, load being
// (active+1)/weight (see loadLess), in one pass over the members that keeps
// the best few in order. The pass starts at the rotation counter and only a
// strictly lower load displaces an earlier candidate, so among equally loaded
// backends (an idle pool, or a burst that arrives faster than connections
// close) the choice rotates instead of piling onto the first member.
//
// Each member's active count is read once per pick, so the order is a
// consistent view even while other connections open and close.
func (p *Pool) orderLeastConn(dst []*Backend) []*Backend {
	n := len(p.members)
	start := int((p.rotation.Add(1) - 1) % uint64(n))
	want := min(cap(dst)-len(dst), maxRanked)

	var (
		idx    [maxRanked]int32
		active [maxRanked]int64
		ranked int
	)
	for i := range n {
		m := (start + i) % n
		b := p.members[m]
		if !p.available(b) {
			continue
		}
		a, w := b.active.Load(), p.weights[m]
		// Find where it goes: after every entry that is not more loaded.
		pos := ranked
		for pos > 0 && loadLess(a, w, active[pos-1], p.weights[idx[pos-1]]) {
			pos--
		}
		if pos >= want {
			continue
		}
		if ranked < want {
			ranked++
		}
		copy(idx[pos+1:ranked], idx[pos:ranked-1])
		copy(active[pos+1:ranked], active[pos:ranked-1])
		idx[pos], active[pos] = int32(m), a
	}
	base := len(dst)
	for _, m := range idx[:ranked] {
		dst = append(dst, p.members[m])
	}
	if len(dst) < cap(dst) && ranked == maxRanked {
		dst = p.appendRotation(dst, base, start)
	}
	return dst
}
