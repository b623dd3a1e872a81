package backends

// prepareRoundRobin builds the smooth weighted round-robin schedule when the
// weights differ; equal weights need only the rotation counter.
func (p *Pool) prepareRoundRobin() {
	p.schedule = nil
	if len(p.members) < 2 || p.equal {
		return
	}
	p.schedule = smoothSchedule(scheduleWeights(p.weights))
}

// smoothSchedule returns one period of nginx's smooth weighted round robin
// over weights (already reduced, so the period is their sum): at each step
// every member's current value grows by its weight, the largest (first on
// ties) is picked and loses the total. Picks of a heavy member are spread
// between the light ones instead of coming in a burst, and after exactly
// sum(weights) steps every current value is back at zero, so repeating the
// period is the same as running the algorithm forever.
//
// Precomputing it makes a pick one atomic add and one index, with no lock:
// nginx runs the algorithm under a lock per pick.
func smoothSchedule(weights []int) []int32 {
	total := 0
	for _, w := range weights {
		total += w
	}
	current := make([]int, len(weights))
	schedule := make([]int32, total)
	for step := range schedule {
		best := 0
		for i, w := range weights {
			current[i] += w
			if current[i] > current[best] {
				best = i
			}
		}
		current[best] -= total
		schedule[step] = int32(best)
	}
	return schedule
}

// orderRoundRobin takes this connection's slot with one atomic add: the value
// returned by Add is unique, so concurrent accepts never get the same slot.
// With equal weights the slot is the member; otherwise the slot indexes the
// smooth schedule. After the first choice the failover order is the other
// members in rotation order.
func (p *Pool) orderRoundRobin(dst []*Backend) []*Backend {
	n := len(p.members)
	slot := p.rotation.Add(1) - 1
	var start int
	if p.schedule != nil {
		start = int(p.schedule[slot%uint64(len(p.schedule))])
	} else {
		start = int(slot % uint64(n))
	}
	for i := 0; i < n && len(dst) < cap(dst); i++ {
		b := p.members[(start+i)%n]
		if p.available(b) {
			dst = append(dst, b)
		}
	}
	return dst
}
