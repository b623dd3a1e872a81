//go:build linux

package proxy

import "time"

// flushEvery is how long a connection's bytes may wait before they reach
// the backend's counters (tierlb_backend_bytes_total, the admin API): well
// within a second, whatever the connection's rate.
const flushEvery = 500 * time.Millisecond

// Moving bytes adds them to the direction's own count only (count, in
// pump.go); the first bytes since the last flush also put the connection
// in the loop's unflushed list. Once flushEvery after the list was
// started, the loop adds each listed connection's new bytes to its
// backend's counters: an atomic add per connection that moved anything,
// not per message, and no visit to the idle ones. A connection that ends
// first has its bytes added by finish, and its entry is skipped.

// markUnflushed lists c for the next flush.
func (l *loop) markUnflushed(c *conn) {
	c.unflushed = true
	if len(l.unflushed) == 0 {
		l.flushAt = l.el.Now + int64(flushEvery)
	}
	l.unflushed = append(l.unflushed, c)
}

// flushCounters adds the listed connections' new bytes to their backends'
// counters. An entry whose connection ended (or was recycled, and maybe
// listed again) has unflushed false, or is flushed once: the bytes
// counted are always the connection's own.
func (l *loop) flushCounters() {
	for i, c := range l.unflushed {
		l.unflushed[i] = nil
		if !c.unflushed {
			continue
		}
		c.unflushed = false
		if c.b == nil {
			continue
		}
		up, down := c.up.n-c.up.counted, c.down.n-c.down.counted
		c.up.counted, c.down.counted = c.up.n, c.down.n
		c.b.AddBytes(up, down)
	}
	l.unflushed = l.unflushed[:0]
}
