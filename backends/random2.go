package backends

import "math/rand/v2"

// prepareRandom2 precomputes running weight sums so a weighted draw is a
// binary search; equal weights draw uniformly and need nothing.
func (p *Pool) prepareRandom2() {
	p.cum = nil
	if p.equal {
		return
	}
	p.cum = make([]int64, len(p.weights))
	var sum int64
	for i, w := range p.weights {
		sum += int64(w)
		p.cum[i] = sum
	}
}

// orderRandom2 draws two distinct members (by weight) and puts the less
// loaded first, the other second, then the rest in rotation order. Two random
// choices avoid both leastconn's herd (every proxy instance sending the next
// burst to the same idle backend) and pure random's imbalance; weights count
// twice, in the draw and in the load comparison, as in HAProxy's random(2).
//
// The draws use math/rand/v2's top-level functions, which read a per-thread
// runtime source: no lock, no allocation.
func (p *Pool) orderRandom2(dst []*Backend) []*Backend {
	n := len(p.members)
	base := len(dst)
	if n == 1 {
		return p.appendRotation(dst, base, 0)
	}
	i, j := p.drawTwo()
	bi, bj := p.members[i], p.members[j]
	okI, okJ := p.available(bi), p.available(bj)
	if okI && okJ && loadLess(bj.active.Load(), p.weights[j], bi.active.Load(), p.weights[i]) {
		i, j, bi, bj = j, i, bj, bi
	} else if !okI {
		i, j, bi, bj, okI, okJ = j, i, bj, bi, okJ, okI
	}
	if okI {
		dst = append(dst, bi)
	}
	if okJ && len(dst) < cap(dst) {
		dst = append(dst, bj)
	}
	return p.appendRotation(dst, base, i+1)
}

// drawTwo returns two distinct member indexes, each drawn with probability
// proportional to its weight (the second among the members left).
func (p *Pool) drawTwo() (int, int) {
	n := len(p.members)
	if p.cum == nil {
		i := rand.IntN(n)
		return i, (i + 1 + rand.IntN(n-1)) % n
	}
	total := p.cum[n-1]
	i := p.search(rand.Int64N(total))
	// Draw over the weight line with member i cut out, then map back.
	wi := int64(p.weights[i])
	r := rand.Int64N(total - wi)
	if r >= p.cum[i]-wi {
		r += wi
	}
	return i, p.search(r)
}

// search returns the member whose slice of the weight line holds r: the
// first index with cum[index] > r.
func (p *Pool) search(r int64) int {
	lo, hi := 0, len(p.cum)-1
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if p.cum[mid] > r {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}
