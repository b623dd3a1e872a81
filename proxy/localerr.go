//go:build linux

package proxy

import (
	"os"
	"sync/atomic"
	"time"

	"github.com/tierlb/tierlb/backends"
)

// Local resource errors are the host's or tierlb's, never a backend's: out
// of descriptors (EMFILE, ENFILE), of kernel memory (ENOBUFS, ENOMEM) or of
// local ports toward a backend (EADDRNOTAVAIL). Counted as a backend's dial
// failure they would eject healthy backends, every one at once, and refuse
// every client for fail_timeout after the squeeze ended. So a dial that
// fails with one counts nothing against the backend, is not retried on
// another (which would fail the same way), refuses its client at once and
// is counted under tierlb_local_errors_total.

// localLogEvery spaces the warnings: when descriptors run out, every new
// client fails the same way, and one line a second says it all.
const localLogEvery = int64(1e9)

// localErrors rate-limits a service's warnings about local errors; safe
// for every loop at once.
type localErrors struct {
	lastLog    atomic.Int64 // UnixNano of the last warning (loops' clocks differ)
	suppressed atomic.Int64 // errors since then
}

// localDialError refuses a client whose backend dial failed for want of
// local resources, if err is such an error; it reports whether it did.
// The attempt's socket, if any, is already closed.
func (l *loop) localDialError(c *conn, op string, err error) bool {
	i := backends.LocalDialError(err)
	if i < 0 {
		return false
	}
	s := c.svc // on a shared TLS port, the service the ClientHello chose
	s.metrics.localError(i)
	serr := os.NewSyscallError(op, err)
	now := time.Now().UnixNano()
	if last := s.local.lastLog.Load(); now-last >= localLogEvery && s.local.lastLog.CompareAndSwap(last, now) {
		s.log.Warn("out of local resources: refusing clients; backends are not blamed",
			"err", serr, "errno", backends.LocalDialErrors[i], "backend", c.dial.cur.ID(), "client", c.peer,
			"more_since_last_warning", s.local.suppressed.Swap(0))
	} else {
		s.local.suppressed.Add(1)
	}
	l.reject(c, RejectLocalError, "error: dial backend "+c.dial.cur.ID()+": "+serr.Error())
	return true
}
