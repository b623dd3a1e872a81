package backends

import (
	"encoding/binary"
	"net/netip"
)

// maglevSize is the Maglev lookup table size. It must be prime (so every
// backend's permutation visits every slot) and it is the same for every pool
// size: a size that followed the member count would remap every client when
// it changed. 65537 slots keep each backend's share within a fraction of a
// percent of its weight for hundreds of backends, at 128 KiB per snapshot.
const maglevSize = 65537

// maglevMembers is the most members a table can index (one value of uint16
// marks an empty slot while building). Members past it get no clients of
// their own; they still appear in failover orders.
const maglevMembers = 1<<16 - 1

// failoverScan bounds how far past a client's slot the failover order looks
// for distinct backends before it falls back to rotation order.
const failoverScan = 64

// prepareSourceHash fills the Maglev table (Eisenbud et al., NSDI 2016): each
// backend walks its own permutation of the slots, fixed by a hash of its ID,
// and the backends take turns claiming the next free slot on their walk. A
// backend's permutation does not depend on the others, so adding or removing
// one of N backends moves about 1/N of the slots: clients keep their backend.
// (Not exactly 1/N: contested slots reshuffle about 0.5% of clients between
// unchanged backends. Rendezvous hashing would avoid that at O(N) per pick.)
//
// Weights change how often a backend gets a turn: one with the largest
// weight claims a slot every round, one with a third of it every third round
// (the scheme Envoy uses), so its share of slots is its share of weight.
func (p *Pool) prepareSourceHash() {
	p.table = nil
	n := min(len(p.members), maglevMembers)
	if n < 2 {
		return
	}
	walkers := make([]maglevWalker, n)
	var wmax int64
	for i := range n {
		h := hashString(p.members[i].ID())
		walkers[i] = maglevWalker{pos: h % maglevSize, skip: mix64(h^0x9e3779b97f4a7c15)%(maglevSize-1) + 1}
		wmax = max(wmax, int64(p.weights[i]))
	}
	const empty = maglevMembers
	table := make([]uint16, maglevSize)
	for i := range table {
		table[i] = empty
	}
	filled := 0
	for round := int64(0); filled < maglevSize; round++ {
		for i := range walkers {
			w := &walkers[i]
			if round*int64(p.weights[i]) < w.turn {
				continue
			}
			w.turn += wmax
			for table[w.pos] != empty {
				w.pos = w.next()
			}
			table[w.pos] = uint16(i)
			w.pos = w.next()
			if filled++; filled == maglevSize {
				break
			}
		}
	}
	p.table = table
}

// maglevWalker is one backend's walk along its permutation of the table.
type maglevWalker struct {
	pos, skip uint64
	turn      int64 // the round at which it may claim its next slot, times wmax
}

// next steps along the permutation; skip < maglevSize, so a subtraction
// replaces the modulus (a division, and most of the build's time).
func (w *maglevWalker) next() uint64 {
	pos := w.pos + w.skip
	if pos >= maglevSize {
		pos -= maglevSize
	}
	return pos
}

// orderSourceHash sends a client to the backend of its slot, then fails over
// to the backends of the following slots, distinct and in table order, so a
// client whose backend is full or failing always gets the same second choice.
// (The table rebuilt without a down backend agrees with that choice for most
// but not all of its clients: Maglev refills freed slots along each
// backend's permutation, not in table order.)
func (p *Pool) orderSourceHash(client netip.Addr, dst []*Backend) []*Backend {
	base := len(dst)
	if p.table == nil {
		return p.appendRotation(dst, base, 0)
	}
	slot := hashAddr(client) % maglevSize
	first, n := -1, len(p.members)
	for i := uint64(0); i < failoverScan && len(dst) < cap(dst) && len(dst)-base < n; i++ {
		m := int(p.table[(slot+i)%maglevSize])
		if first < 0 {
			first = m
		}
		if b := p.members[m]; p.available(b) && !contains(dst[base:], b) {
			dst = append(dst, b)
		}
	}
	return p.appendRotation(dst, base, first+1)
}

// hashAddr hashes a client address without allocating: its 16-byte form
// (so 1.2.3.4 and ::ffff:1.2.3.4 are the same client) as two words through
// splitmix64's finalizer, which mixes every bit into the low ones the table
// modulus reads. It does not depend on a per-process seed, so clients keep
// their backend across restarts of tierlb.
func hashAddr(a netip.Addr) uint64 {
	if !a.IsValid() {
		return 0
	}
	b := a.As16()
	return mix64(binary.BigEndian.Uint64(b[:8]) ^ mix64(binary.BigEndian.Uint64(b[8:])))
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// hashString is FNV-1a with splitmix64's finalizer, for backend IDs.
func hashString(s string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * fnvPrime
	}
	return mix64(h)
}

// mix64 is splitmix64's finalizer: every input bit affects every output bit.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
