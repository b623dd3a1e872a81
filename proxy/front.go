//go:build linux

package proxy

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"

	"github.com/tierlb/tierlb/proxy/sni"
)

// Front is a listen address shared by services that route TLS connections
// by server name (their Config.SNI), with no TLS terminated. The loops
// (Options.Loops) accept on its listener, read an accepted PROXY header,
// then the whole ClientHello (hello.go), and hand the connection to the
// service whose names match:
// from then on the connection is that service's (its settings, pool,
// metrics and access log) and runs in the same loop like any other, the
// bytes read so far going to the backend first, unchanged.
//
// A connection that matches no service, is not TLS, or sends no whole
// ClientHello within Timeouts.ClientHello is closed and counted under the
// Front's name (RejectNoSNIRoute, RejectNotTLS).
//
// The listener defers accepting until the client's first bytes arrive
// (TCP_DEFER_ACCEPT of 1 s), so one wakeup of a loop accepts the
// connection and reads its ClientHello. A client that sends nothing is
// handed over by the kernel about a second after its handshake, and its
// ClientHello timeout (or its PROXY header's, from a trusted proxy) runs
// from then.
//
//	f, err := proxy.NewFront(proxy.Config{Name: ":443", Listen: ":443"}, opts)
//	f.Listen()
//	f.SetRoutes([]*proxy.Service{app, api}) // each NewService'd with SNI names
//	go f.Serve(ctx); go app.Serve(ctx); go api.Serve(ctx)
//	...
//	f.Shutdown(ctx); app.Shutdown(ctx); api.Shutdown(ctx)
type Front struct {
	s      *Service
	routes atomic.Pointer[routeTable]
}

// routeTable is a Front's routing for one configuration.
type routeTable struct {
	m    *sni.Matcher
	svcs []*Service
}

// NewFront returns a front for cfg.Listen that is not yet listening. Of
// cfg it reads the name (logs, metrics, access log), the listen options,
// AcceptProxyProtocol, Timeouts.ProxyHeader and Timeouts.ClientHello, and
// AccessLog; the rest belongs to the services it routes to.
func NewFront(cfg Config, opts Options) (*Front, error) {
	cfg.SNI = nil
	s, err := newService(cfg, nil, opts)
	if err != nil {
		return nil, err
	}
	f := &Front{}
	s.routes = &f.routes
	f.s = s
	return f, nil
}

// SetRoutes routes by the SNI names of svcs from now on; connections
// already handed over stay with their service. A name that two services
// claim is an error, and the routing in force stays.
func (f *Front) SetRoutes(svcs []*Service) error {
	names := make([][]string, len(svcs))
	for i, s := range svcs {
		names[i] = s.cfg.Load().SNI
		if len(names[i]) == 0 {
			return fmt.Errorf("front %s: service %s has no SNI names", f.s.name, s.name)
		}
	}
	m, err := sni.NewMatcher(names)
	if err != nil {
		return fmt.Errorf("front %s: %w", f.s.name, err)
	}
	f.routes.Store(&routeTable{m: m, svcs: svcs})
	return nil
}

// Listen binds the address now, so that bind errors surface early.
func (f *Front) Listen() error { return f.s.Listen() }

// Addr returns the bound address, or nil before Listen.
func (f *Front) Addr() net.Addr { return f.s.Addr() }

// Active returns the connections whose ClientHello is being read.
func (f *Front) Active() int { return f.s.Active() }

// Serve accepts until ctx is done or Shutdown; see Service.Serve.
func (f *Front) Serve(ctx context.Context) error { return f.s.Serve(ctx) }

// Shutdown closes the listener and ends the connections still reading
// their ClientHello (at ctx's end at the latest). Connections handed to
// services are theirs to drain: the loops run until the last of them
// has shut down too.
func (f *Front) Shutdown(ctx context.Context) error { return f.s.Shutdown(ctx) }

// enter admits a connection that a Front, served by set, hands over:
// false once the service is shutting down or no longer serving. The
// service holds set until its Shutdown, which waits for its connections
// there.
func (s *Service) enter(set *Loops) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining || s.lnClosed || s.hold(set) != nil {
		return false
	}
	s.wg.Add(1)
	return true
}

// Reconfigure applies cfg, read as NewFront reads it, to connections
// accepted from now on.
func (f *Front) Reconfigure(cfg Config) {
	cfg.SNI = nil
	f.s.Reconfigure(cfg)
}
