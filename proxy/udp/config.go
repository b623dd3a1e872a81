//go:build linux

package udp

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/tierlb/tierlb/backends"
	"github.com/tierlb/tierlb/proxy/internal/evloop"
)

// Config is one UDP service's data-path settings. Zero values mean the
// defaults documented on each field; cmd/ fills them from the user's config.
type Config struct {
	// Name is the service name used in logs and metrics.
	Name string
	// Listen is the host:port to receive on; IPv6 as [::]:port. A wildcard
	// host answers each client from the address it sent to. The port may
	// be a range, first-last (at most 1,000 ports): one socket per port,
	// all of them this service, a client's session per port it sends to.
	Listen string
	// SessionTimeout forgets a session after this long without datagrams
	// either way (30s).
	SessionTimeout time.Duration
	// MaxSessions caps the service's open sessions; datagrams that would
	// start more are dropped and counted. 0 is unlimited.
	MaxSessions int
	// Responses is how many datagrams the backend sends back per client
	// datagram; the session ends once they arrived (DNS: 1). 0: any number,
	// the session ends by SessionTimeout.
	Responses int
	// Allow lists the client networks whose datagrams are proxied; empty
	// allows all.
	Allow []netip.Prefix
	// ReusePort sets SO_REUSEPORT on the listening sockets even when the
	// service runs one loop (with more, each loop has its own socket in a
	// SO_REUSEPORT group anyway).
	ReusePort bool
	// AccessLog logs one line per finished session.
	AccessLog bool
}

const defaultSessionTimeout = 30 * time.Second

func (c *Config) sessionTimeout() int64 {
	if c.SessionTimeout <= 0 {
		return int64(defaultSessionTimeout)
	}
	return int64(c.SessionTimeout)
}

// allowed reports whether a client may start a session.
func (c *Config) allowed(a netip.Addr) bool {
	if len(c.Allow) == 0 {
		return true
	}
	for _, p := range c.Allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Pools gives the data path a service's backends. *backends.Set
// implements it.
type Pools interface {
	// Pool is the snapshot of the backends that take new sessions.
	Pool() *backends.Pool
	// Backends lists every backend, whatever its state, so that their
	// series exist from the start.
	Backends() []*backends.Backend
}

// Observer hears how backends answer, for passive health checks: a
// refused datagram (ICMP port unreachable) is a failed dial, a session's
// first reply a successful one. Implementations must be cheap and safe for
// concurrent use. proxy.DialObserver has the same methods.
type Observer interface {
	DialFailed(b *backends.Backend, err error)
	DialSucceeded(b *backends.Backend)
}

// Options are a Service's collaborators; nil fields mean none.
type Options struct {
	// Logger receives operational messages. Nil discards.
	Logger *slog.Logger
	// AccessLog receives, with Config.AccessLog, one line per finished
	// session at level info. Nil: Logger.
	AccessLog *slog.Logger
	// Metrics records the UDP series. Nil records nothing.
	Metrics *Metrics
	// Observer hears backend failures and answers. Nil: nobody.
	Observer Observer
	// Loops are the event loops that serve the service: the process's
	// (proxy.NewLoops), shared with every other service. The service binds
	// one socket per loop in a SO_REUSEPORT group, one in each loop. Nil:
	// one socket in a loop of the service's own, which Shutdown stops.
	Loops *evloop.Set
}

// maxTries bounds the backends a session start or move may try.
const maxTries = 8

type nopObserver struct{}

func (nopObserver) DialFailed(*backends.Backend, error) {}
func (nopObserver) DialSucceeded(*backends.Backend)     {}
