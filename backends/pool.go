package backends

import (
	"fmt"
	"net/netip"
	"sync/atomic"
)

// Policy names a balancing policy.
type Policy string

// The balancing policies.
const (
	RoundRobin Policy = "roundrobin"
	LeastConn  Policy = "leastconn"
	Random2    Policy = "random2"
	SourceHash Policy = "sourcehash"
)

// ParsePolicy checks a policy name.
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(s); p {
	case RoundRobin, LeastConn, Random2, SourceHash:
		return p, nil
	}
	return "", fmt.Errorf("unknown balance %q (want roundrobin, leastconn, random2 or sourcehash)", s)
}

// Pool is an immutable snapshot of the backends that may take new
// connections, with whatever its policy precomputed. Readers never lock.
type Pool struct {
	service       string
	policy        Policy
	members       []*Backend
	maxPerBackend int64
	rotation      *atomic.Uint64

	// weights are the effective weights, parallel to members. When every
	// member has the same weight, same, and the policy reads no weight per
	// pick (roundrobin, sourcehash: most pools), it is nil, a word per
	// member spared; leastconn and random2 index it directly, as a branch
	// per member would cost a pick time.
	weights []int
	same    int
	equal   bool // every weight the same: plain rotation, uniform choices
	// schedule is the smooth weighted round-robin sequence of member indexes
	// (nil when all weights are equal: plain rotation).
	schedule []int32
	// cum holds random2's running weight sums (nil when weights are equal).
	cum []int64
	// table is sourcehash's Maglev lookup table (nil for fewer than two
	// members).
	table []uint16
}

// Len is the number of backends in the pool.
func (p *Pool) Len() int { return len(p.members) }

// Members returns the pool's backends; the caller must not modify the slice.
func (p *Pool) Members() []*Backend { return p.members }

// Weight returns the effective weight of member i, relative to the other
// members' (with slow start on, every weight is scaled by the ramp's steps).
func (p *Pool) Weight(i int) int { return p.weight(i) }

func (p *Pool) weight(i int) int {
	if p.weights == nil {
		return p.same
	}
	return p.weights[i]
}

// Order appends to dst, up to cap(dst), the backends to try for a new
// connection from client: the first choice, then the failover order. Backends
// that stopped being up since the snapshot was taken or are at
// max_conns_per_backend are skipped, so the result may be shorter (or empty:
// nothing can take the connection). It never grows dst, so it does not
// allocate; pass a buffer with cap = retries+1. client matters only to
// sourcehash.
func (p *Pool) Order(client netip.Addr, dst []*Backend) []*Backend {
	if len(p.members) == 0 || len(dst) >= cap(dst) {
		return dst
	}
	switch p.policy {
	case LeastConn:
		return p.orderLeastConn(dst)
	case Random2:
		return p.orderRandom2(dst)
	case SourceHash:
		return p.orderSourceHash(client, dst)
	default:
		return p.orderRoundRobin(dst)
	}
}

// available reports whether b may take one more connection now.
func (p *Pool) available(b *Backend) bool {
	if p.maxPerBackend > 0 && b.active.Load() >= p.maxPerBackend {
		return false
	}
	return b.Up()
}

// appendRotation appends the available members not yet in dst[base:],
// starting at member start and wrapping: the failover order shared by the
// policies once their own choices are placed.
func (p *Pool) appendRotation(dst []*Backend, base, start int) []*Backend {
	n := len(p.members)
	for i := 0; i < n && len(dst) < cap(dst); i++ {
		b := p.members[(start+i)%n]
		if p.available(b) && !contains(dst[base:], b) {
			dst = append(dst, b)
		}
	}
	return dst
}

// prepare precomputes the policy's lookup structures for this snapshot.
func (p *Pool) prepare() {
	if len(p.members) == 0 {
		return
	}
	p.equal = equalWeights(p.weights)
	switch p.policy {
	case LeastConn:
		// Reads live connection counts; nothing to precompute.
	case Random2:
		p.prepareRandom2()
	case SourceHash:
		p.prepareSourceHash()
	default:
		p.prepareRoundRobin()
	}
	if p.equal && p.policy != LeastConn && p.policy != Random2 {
		p.same, p.weights = p.weights[0], nil
	}
}
