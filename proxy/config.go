package proxy

import (
	"net/netip"
	"time"

	"github.com/tierlb/tierlb/backends"
)

// Config is one service's data-path settings. Zero values mean the defaults
// documented on each field; cmd/ fills them from the user's config.
type Config struct {
	// Name is the service name used in logs and metrics.
	Name string
	// Listen is the host:port to accept on; IPv6 as [::]:port. The port
	// may be a range, first-last (at most 1,000 ports): one listening
	// socket per port, all of them this service.
	Listen string
	// Timeouts bound each phase of a connection.
	Timeouts Timeouts
	// Retries is how many other backends are tried after a failed dial before
	// the client is closed.
	Retries int
	// MaxConns caps open client connections for the service; 0 is unlimited.
	MaxConns int
	// MaxConnsPerClient caps open connections from one client address
	// (the PROXY header's, for trusted proxies); 0 is unlimited. Excess
	// connections are refused at once.
	MaxConnsPerClient int
	// DeferDial dials the backend only once the client has sent its first
	// bytes, closing a client that sends none within Timeouts.FirstData.
	// Only for protocols where the client speaks first (HTTP, TLS, ...):
	// a server-speaks-first client (SMTP, MySQL, FTP, SSH) waits for a
	// greeting that never comes.
	DeferDial bool
	// CloseOnBackendDown closes open connections of a backend that goes down
	// (on_backend_down: close); false keeps them.
	CloseOnBackendDown bool
	// ProxyProtocol is the PROXY header version sent to backends: "", "v1" or "v2".
	ProxyProtocol string
	// AcceptProxyProtocol lists the client networks allowed to send a PROXY
	// header (v1 or v2); from them the header is required.
	AcceptProxyProtocol []netip.Prefix
	// Allow lists the client networks allowed to connect; empty allows all.
	Allow []netip.Prefix
	// ReusePort sets SO_REUSEPORT on the listener.
	ReusePort bool
	// ZeroCopy moves bytes with splice(2) where the kernel allows; false uses
	// a pooled buffer copy.
	ZeroCopy bool
	// AccessLog logs one line per finished connection.
	AccessLog bool
	// SNI lists the TLS server names routed to the service (exact,
	// "*.suffix", or "*" for the default; see sni.Matcher). A service with
	// names has no listener of its own: a Front on its Listen address
	// reads each connection's ClientHello and hands it over.
	SNI []string
}

// Timeouts of a service; zero means the default in parentheses.
type Timeouts struct {
	Connect   time.Duration // dial one backend (2s)
	Idle      time.Duration // no bytes either way (1h)
	HalfClose time.Duration // after one side's FIN, how long the other may go on (30s)
	// ProxyHeader bounds reading an accepted PROXY header (5s); on a
	// Front, from the client's first bytes, as ClientHello.
	ProxyHeader time.Duration
	// ClientHello bounds reading the ClientHello on a Front (5s), from
	// the client's first bytes, or for a client that sends none from when
	// the kernel hands it over, about a second after its handshake (see
	// Front).
	ClientHello time.Duration
	// FirstData bounds, with DeferDial, how long a client may stay silent
	// before it is closed (10s).
	FirstData time.Duration
}

// Pools gives the data path the current snapshot of a service's backends.
// *backends.Set implements it.
type Pools interface {
	Pool() *backends.Pool
}

// DialObserver hears the outcome of every backend dial, for passive health
// checks. Implementations must be cheap and safe for concurrent use.
type DialObserver interface {
	DialFailed(b *backends.Backend, err error)
	DialSucceeded(b *backends.Backend)
}

// The defaults for zero Timeouts.
const (
	defaultConnect     = 2 * time.Second
	defaultIdle        = time.Hour
	defaultHalfClose   = 30 * time.Second
	defaultProxyHeader = 5 * time.Second
	defaultClientHello = 5 * time.Second
	defaultFirstData   = 10 * time.Second
)

func (t Timeouts) connect() time.Duration     { return orDefault(t.Connect, defaultConnect) }
func (t Timeouts) idle() time.Duration        { return orDefault(t.Idle, defaultIdle) }
func (t Timeouts) halfClose() time.Duration   { return orDefault(t.HalfClose, defaultHalfClose) }
func (t Timeouts) proxyHeader() time.Duration { return orDefault(t.ProxyHeader, defaultProxyHeader) }
func (t Timeouts) clientHello() time.Duration { return orDefault(t.ClientHello, defaultClientHello) }
func (t Timeouts) firstData() time.Duration   { return orDefault(t.FirstData, defaultFirstData) }

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// maxTries bounds the stack array of backends one connection may try.
const maxTries = 16

// tries is how many backends a connection may try: the first choice plus
// Retries, capped so the failover order fits a fixed array.
func (c *Config) tries() int {
	return min(max(c.Retries, 0)+1, maxTries)
}
