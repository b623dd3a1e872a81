//go:build linux

package proxy

import (
	"net/netip"
	"sync"
)

// clientCounts counts a service's open connections per client address for
// max_conns_per_client, so that a client holding connections open (idle
// hoarding, a connection leak) is refused its next one while others are
// served. A service without the limit never touches it. One mutex for
// every loop: the lock is held for a map update, once at accept and once
// at close.
type clientCounts struct {
	mu sync.Mutex
	n  map[netip.Addr]int32
}

// acquire counts a connection from a unless a already has limit open.
func (cc *clientCounts) acquire(a netip.Addr, limit int) bool {
	a = a.Unmap() // the same client through a dual-stack listener
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.n == nil {
		cc.n = make(map[netip.Addr]int32)
	}
	if int(cc.n[a]) >= limit {
		return false
	}
	cc.n[a]++
	return true
}

// release forgets one connection from a.
func (cc *clientCounts) release(a netip.Addr) {
	a = a.Unmap()
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.n[a] <= 1 {
		delete(cc.n, a) // the map holds only clients with connections open
		return
	}
	cc.n[a]--
}

// admitClient applies max_conns_per_client to c's client (after its PROXY
// header, if it sent one), rejecting c when the client is at its limit. It
// reports whether c may go on.
func (l *loop) admitClient(c *conn) bool {
	limit := c.cfg.MaxConnsPerClient
	if limit <= 0 {
		return true
	}
	if !c.svc.clients.acquire(c.peer.Addr(), limit) {
		l.reject(c, RejectMaxConnsPerClient, "error: client has max_conns_per_client connections open")
		return false
	}
	c.counted = true
	return true
}

// releaseClient gives back c's place in the per-client counts, at close.
func (l *loop) releaseClient(c *conn) {
	if c.counted {
		c.svc.clients.release(c.peer.Addr())
		c.counted = false
	}
}
