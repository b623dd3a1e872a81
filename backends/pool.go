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
	weights       []int // effective weights, parallel to members
	maxPerBackend int64
	rotation      *atomic.Uint64

	// schedule is the smooth weighted round-robin sequence of member indexes
	// (nil when all weights are equal: plain rotation).
	schedule []int32
}

// Len is the number of backends in the pool.
func (p *Pool) Len() int { return len(p.members) }

// Members returns the pool's backends; the caller must not modify the slice.
func (p *Pool) Members() []*Backend { return p.members }

// Weight returns the effective weight of member i.
func (p *Pool) Weight(i int) int { return p.weights[i] }

// Order appends to dst, up to cap(dst), the backends to try for a new
// connection from client: the first choice, then the failover order. Backends
// that stopped being up since the snapshot was taken or are at
// max_conns_per_backend are skipped. It does not allocate when cap(dst) > 0.
func (p *Pool) Order(client netip.Addr, dst []*Backend) []*Backend {
	if len(p.members) == 0 || cap(dst) == 0 {
		return dst
	}
	switch p.policy {
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

// prepare precomputes the policy's lookup structures for this snapshot.
func (p *Pool) prepare() {
	p.prepareRoundRobin()
}
