package backends

// MaxWeight is the largest backend weight. Larger weights are clamped by the
// pool and rejected by StaticSpecs: a ratio beyond 65535:1 means "never" for
// any real traffic, and the bound keeps weight arithmetic far from overflow.
const MaxWeight = 65535

// MaxPriority is the largest priority group number. Groups are few in
// practice (primary, backup, last resort); the bound catches typos.
const MaxPriority = 1000

// maxSchedule bounds the smooth weighted round-robin schedule, so a pool with
// odd weights (or a slow start ramp) costs at most 16 KiB and one short build.
const maxSchedule = 4096

// equalWeights reports whether every weight is the same, in which case the
// policies use plain rotation and uniform choices.
func equalWeights(ws []int) bool {
	for _, w := range ws[1:] {
		if w != ws[0] {
			return false
		}
	}
	return true
}

// scheduleWeights returns the weights reduced to the shortest schedule that
// keeps their ratio: divided by their gcd and, when they still sum to more
// than maxSchedule, scaled down proportionally with every weight kept >= 1
// (so no backend silently drops out; its share grows a little instead).
func scheduleWeights(ws []int) []int {
	out := make([]int, len(ws))
	copy(out, ws)
	reduceByGCD(out)
	sum := 0
	for _, w := range out {
		sum += w
	}
	if sum > maxSchedule {
		for i, w := range out {
			out[i] = max(1, int(int64(w)*maxSchedule/int64(sum)))
		}
		reduceByGCD(out)
	}
	return out
}

// reduceByGCD divides ws in place by their greatest common divisor.
func reduceByGCD(ws []int) {
	g := 0
	for _, w := range ws {
		g = gcd(g, w)
	}
	if g <= 1 {
		return
	}
	for i := range ws {
		ws[i] /= g
	}
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// loadLess reports whether backend a with weight wa is less loaded than b
// with weight wb, comparing (active+1)/weight by cross multiplication: the
// load each would have after taking this connection, as HAProxy's leastconn
// does, so that weights matter even while every backend is idle.
func loadLess(activeA int64, wa int, activeB int64, wb int) bool {
	return (activeA+1)*int64(wb) < (activeB+1)*int64(wa)
}

// contains reports whether b is already in order (a few entries at most).
func contains(order []*Backend, b *Backend) bool {
	for _, x := range order {
		if x == b {
			return true
		}
	}
	return false
}
