//go:build linux

package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/tierlb/tierlb/backends"
	"github.com/tierlb/tierlb/internal/listenaddr"
	"github.com/tierlb/tierlb/proxy/internal/evloop"
)

// Options are a Service's collaborators and the process-wide choices cmd/
// makes for it; zero fields mean the default documented on each.
type Options struct {
	// Logger receives operational messages. Nil discards.
	Logger *slog.Logger
	// AccessLog receives, with Config.AccessLog, one line per finished
	// connection at level info. Nil: Logger. Give it a logger that passes
	// info whatever the operational level, so that log.level: warn does
	// not silence an access log the user asked for.
	AccessLog *slog.Logger
	// Metrics records the per-service series. Nil records nothing.
	Metrics *Metrics
	// Observer hears every backend dial's outcome. Nil: nobody.
	Observer DialObserver
	// Loops are the event loops that serve the service: the process's
	// (NewLoops), shared by every service. Nil: the service runs a set of
	// its own, one loop per P, which its Shutdown stops.
	Loops *Loops
}

// settings is a Config with what is derived from it once per
// (re)configuration instead of once per connection.
type settings struct {
	Config
	proxyVersion byte // 0: send no PROXY header
	portRange    bool // Listen is a port range: the access log names the port
}

func newSettings(cfg Config) (*settings, error) {
	st := &settings{Config: cfg}
	if _, first, last, err := listenaddr.Split(cfg.Listen); err == nil {
		st.portRange = last > first
	}
	switch cfg.ProxyProtocol {
	case "":
	case "v1":
		st.proxyVersion = 1
	case "v2":
		st.proxyVersion = 2
	default:
		return nil, fmt.Errorf("service %s: proxy_protocol %q: want \"\", v1 or v2", cfg.Name, cfg.ProxyProtocol)
	}
	return st, nil
}

// Service is one load-balanced TCP service: a listener registered in the
// process's event loops (Options.Loops), and the connections they proxy
// to the backends of its pool.
type Service struct {
	name     string
	pools    Pools
	log      *slog.Logger
	access   *slog.Logger // access log lines
	metrics  *serviceMetrics
	observer DialObserver
	cfg      atomic.Pointer[settings]

	// fed: the service has SNI names and no listener of its own; a
	// Front's loops hand it its connections (front.go).
	fed bool
	// routes is set on a Front's own service, whose loops read each
	// connection's ClientHello and route it by this table.
	routes *atomic.Pointer[routeTable]
	// served is closed with the listener: a fed service's Serve waits
	// for it.
	served chan struct{}

	// dialCtx bounds the backend name lookups in flight; it is canceled
	// when connections are cut, so a drain does not wait for a resolver.
	dialCtx   context.Context
	stopDials context.CancelFunc

	active  atomic.Int64 // open client connections
	local   localErrors  // warnings about local resource errors
	clients clientCounts // open connections per client address

	mu        sync.Mutex
	set       *Loops      // Options.Loops, a set of its own, or a Front's when fed
	held      bool        // the service holds set (Acquire)
	lns       []*listener // bound by Listen
	accepting bool        // lns are registered in the loops
	lnClosed  bool        // no more accepting: Serve has returned or will
	draining  bool
	wg        sync.WaitGroup // one per open connection
}

// NewService checks cfg and returns a service that is not yet listening.
func NewService(cfg Config, pools Pools, opts Options) (*Service, error) {
	if pools == nil {
		return nil, fmt.Errorf("service %s: no backend pools", cfg.Name)
	}
	return newService(cfg, pools, opts)
}

func newService(cfg Config, pools Pools, opts Options) (*Service, error) {
	st, err := newSettings(cfg)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	access := opts.AccessLog
	if access == nil {
		access = log
	}
	obs := opts.Observer
	if obs == nil {
		obs = nopObserver{}
	}
	s := &Service{
		name:     cfg.Name,
		pools:    pools,
		log:      log.With("service", cfg.Name),
		access:   access.With("service", cfg.Name),
		metrics:  opts.Metrics.initService(cfg.Name),
		observer: obs,
		set:      opts.Loops,
		fed:      len(cfg.SNI) > 0,
		served:   make(chan struct{}),
	}
	s.dialCtx, s.stopDials = context.WithCancel(context.Background())
	s.cfg.Store(st)
	return s, nil
}

// Name returns the service's name.
func (s *Service) Name() string { return s.name }

// Listen binds the service's listen address now, so that bind errors
// surface before serving. Serve calls it when it was not called.
func (s *Service) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lns != nil || s.fed {
		return nil
	}
	if s.draining {
		return fmt.Errorf("listen for service %s: %w", s.name, net.ErrClosed)
	}
	cfg := s.cfg.Load()
	addrs, err := listenaddr.Expand(cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen for service %s: %w", s.name, err)
	}
	lns := make([]*listener, 0, len(addrs))
	for _, addr := range addrs {
		ln, err := listen(context.Background(), addr, cfg.ReusePort)
		var l *listener
		if err == nil {
			l, err = newListener(s, ln)
		}
		if err != nil {
			for _, l := range lns {
				l.close()
			}
			return fmt.Errorf("listen for service %s on %s: %w", s.name, addr, err)
		}
		lns = append(lns, l)
	}
	s.lns = lns
	return nil
}

// Addr returns the bound address (of a port range, the first port's), or
// nil before Listen and for a service with SNI names, which its Front
// listens for.
func (s *Service) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.lns) == 0 {
		return nil
	}
	return s.lns[0].addr
}

// Active returns the number of open client connections, including those
// still reading a PROXY header or dialing a backend.
func (s *Service) Active() int { return int(s.active.Load()) }

// Reconfigure applies cfg to connections accepted from now on; open ones
// keep the settings they started with. A changed listen address is not
// handled here, nor is a change between having SNI names and not: the
// caller starts a new Service for it. An invalid cfg is logged and ignored.
func (s *Service) Reconfigure(cfg Config) {
	st, err := newSettings(cfg)
	if err == nil && (len(cfg.SNI) > 0) != s.fed {
		err = fmt.Errorf("service %s: sni set or cleared: the service needs a restart", s.name)
	}
	if err != nil {
		s.log.Error("reconfigure rejected", "err", err)
		return
	}
	s.cfg.Store(st)
}

// Serve registers the service's listener in the loops, which accept
// connections until ctx is done, Shutdown closes the listener or
// StopAccepting takes it out of the loops; then it returns nil, and open
// connections go on until Shutdown. Accept errors such as EMFILE are
// retried with backoff, never returned.
func (s *Service) Serve(ctx context.Context) error {
	stop, err := s.start(ctx)
	if err != nil {
		return err
	}
	defer stop()
	<-s.served
	return nil
}

// Start is Serve without the wait: it registers the listener and returns
// (once the loops run), and Done is closed when Serve would return, or at
// once if Start fails. A process with hundreds of services need not park
// a goroutine (and its stack) for each.
func (s *Service) Start(ctx context.Context) error {
	if _, err := s.start(ctx); err != nil {
		s.closeListener()
		return err
	}
	return nil
}

func (s *Service) start(ctx context.Context) (stop func() bool, err error) {
	if err := s.Listen(); err != nil {
		return nil, err
	}
	stop = context.AfterFunc(ctx, s.closeListener)
	if !s.fed {
		// A fed service's connections arrive through a Front, in the
		// Front's loops.
		if err := s.startAccepting(); err != nil {
			stop()
			return nil, err
		}
	}
	return stop, nil
}

// Done is closed once the service no longer accepts: its listener closed
// (ctx of Serve or Start done, or Shutdown) or taken out by StopAccepting.
func (s *Service) Done() <-chan struct{} { return s.served }

// startAccepting registers the listeners in the loops.
func (s *Service) startAccepting() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lnClosed || s.accepting {
		return nil
	}
	if err := s.hold(nil); err != nil {
		return fmt.Errorf("serve %s: %w", s.name, err)
	}
	for i, ln := range s.lns {
		if err := ln.register(s.set); err != nil {
			for _, ln := range s.lns[:i] {
				ln.unregister(s.set)
			}
			return fmt.Errorf("serve %s: %w", s.name, err)
		}
	}
	s.accepting = true
	return nil
}

// hold acquires the service's loops, made now when the service runs its
// own; set, for a fed service, is the Front's. With s.mu held.
func (s *Service) hold(set *Loops) error {
	if s.held {
		if set != nil && set != s.set {
			return errors.New("connections from two sets of loops")
		}
		return nil
	}
	if set == nil {
		set = s.set
	}
	held, err := evloop.Hold(set, runtime.GOMAXPROCS(0), s.log)
	if err != nil {
		return err
	}
	s.set, s.held = held, true
	return nil
}

// Shutdown drains the service in three steps: close the listener, wait for
// open connections to finish until ctx is done, then cut the rest (ended
// "drain"). It returns once every connection is closed; the number cut is
// logged, not returned as an error, because cutting at the deadline is the
// contract rather than a failure. Other services in the same loops are
// not touched.
func (s *Service) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	s.closeListener()

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.stopDials()
		s.mu.Lock()
		set := s.set
		held := s.held
		s.mu.Unlock()
		n := 0
		if held {
			n = abortService(set, s, EndDrain)
		}
		<-done
		s.log.Info("drain timeout: open connections closed", "count", n)
	}
	s.stopDials()
	s.mu.Lock()
	if s.held {
		s.held = false
		s.set.Release()
	}
	s.mu.Unlock()
	return nil
}

// closeListener stops accepting and closes the listening sockets;
// idempotent. It returns once no loop accepts any more, so no connection
// is added after it.
func (s *Service) closeListener() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopAccepting(true)
}

type nopObserver struct{}

func (nopObserver) DialFailed(*backends.Backend, error) {}
func (nopObserver) DialSucceeded(*backends.Backend)     {}
