//go:build linux

package proxy

// Which loop serves a new connection. The kernel wakes one loop per
// connection (EPOLLEXCLUSIVE): the first of the listener's loops that is
// waiting, so at a low rate nearly always the first loop, and another one
// only while the first is busy or waits for a core. A connection handed
// to another loop costs a request through that loop's queue, and a loop
// that serves even one connection wakes for each of its events, raw-waits
// after it, and pays a park or a sleep when it falls idle again; on a
// 2-core box shared with clients and backends that made two loops cost
// more per short connection than one. So a few connections at a time
// gather on one loop, and they spread once a loop holds clearly more
// than another:
//
//   - a loop that holds connections keeps a new one unless another loop
//     holds fewer by more than the slack;
//   - a loop that holds none passes it to the first loop within the slack
//     of the least loaded, so that a connection the kernel gave it while
//     the first loop was busy does not keep it awake;
//   - the slack is 1/8 of the busier loop's connections, so steady churn
//     does not move connections back and forth, and idleSlack while at
//     most one loop holds any: a second loop is woken only once the first
//     holds idleSlack+1 connections, and from then on the connections
//     even out over all the loops. A burst of bulk connections still
//     spreads (8 connections on 2 loops: 4 and 4; on 8 loops: 3 on the
//     first, 1 on five others), and so does a busy service; a few short
//     connections at a time stay on one loop.

// idleSlack is how many more connections a loop holds before a loop
// that holds none is given one.
const idleSlack = 2

// pickLoop returns the index of the loop to serve a connection that loop
// self accepted, from each loop's connection count; a negative count is
// a stopped loop, which takes nothing.
func pickLoop(loads []int32, self int) int {
	least, busy := int32(-1), 0
	for _, n := range loads {
		if n >= 0 && (least < 0 || n < least) {
			least = n
		}
		if n > 0 {
			busy++
		}
	}
	within := func(n int32) bool {
		slack := n / 8
		if busy <= 1 {
			slack = max(slack, idleSlack)
		}
		return n >= 0 && n-least <= slack
	}
	if loads[self] > 0 && within(loads[self]) {
		return self
	}
	for i, n := range loads {
		if within(n) {
			return i
		}
	}
	return self
}
