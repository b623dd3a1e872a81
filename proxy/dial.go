package proxy

import (
	"fmt"
	"net"
	"time"

	"github.com/tierlb/tierlb/backends"
)

// dial connects to the first backend of order that answers within the
// connect timeout. Every failure is counted on its backend and reported to
// the observer, then the next backend is tried, so a client never notices a
// dead backend while another one works.
func (s *Service) dial(c *conn, order []*backends.Backend) (*net.TCPConn, *backends.Backend, error) {
	var last error
	for _, b := range order {
		addr := b.Address()
		t0 := time.Now()
		// dialCtx is canceled when Shutdown cuts connections, so a drain
		// does not wait out a connect timeout.
		nc, err := c.cfg.dialer.DialContext(s.dialCtx, "tcp", addr)
		if err == nil {
			s.metrics.dialed(time.Since(t0).Seconds())
			s.observer.DialSucceeded(b)
			return nc.(*net.TCPConn), b, nil
		}
		last = fmt.Errorf("dial backend %s/%s %s: %w", s.name, b.ID(), addr, err)
		if s.dialCtx.Err() != nil || c.isAborted() {
			return nil, nil, last
		}
		b.CountConnectError(backends.ClassifyDialError(err))
		s.observer.DialFailed(b, err)
		s.log.Debug("backend dial failed", "backend", b.ID(), "client", c.peer, "err", err)
	}
	return nil, nil, last
}
