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
	// Loops is how many event loops the service runs; 0 means one per P
	// (GOMAXPROCS). A loop sleeps in a blocking epoll_wait, so the caller
	// should leave Go's scheduler a P more than the loops (see doc.go).
	Loops int
}

// settings is a Config with what is derived from it once per
// (re)configuration instead of once per connection.
type settings struct {
	Config
	proxyVersion byte // 0: send no PROXY header
}

func newSettings(cfg Config) (*settings, error) {
	st := &settings{Config: cfg}
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

// Service is one load-balanced TCP service: a listener, the event loops
// that accept on it, and the connections they proxy to the backends of
// its pool.
type Service struct {
	name     string
	pools    Pools
	log      *slog.Logger
	access   *slog.Logger // access log lines
	metrics  *serviceMetrics
	observer DialObserver
	cfg      atomic.Pointer[settings]
	loops    int // Options.Loops

	// dialCtx bounds the backend name lookups in flight; it is canceled
	// when connections are cut, so a drain does not wait for a resolver.
	dialCtx   context.Context
	stopDials context.CancelFunc

	active atomic.Int64 // open client connections

	mu       sync.Mutex
	ln       *net.TCPListener // until the engine takes its socket over
	lnClosed bool
	draining bool
	eng      *engine        // set by Serve
	wg       sync.WaitGroup // one per open connection
}

// NewService checks cfg and returns a service that is not yet listening.
func NewService(cfg Config, pools Pools, opts Options) (*Service, error) {
	if pools == nil {
		return nil, fmt.Errorf("service %s: no backend pools", cfg.Name)
	}
	if opts.Loops < 0 {
		return nil, fmt.Errorf("service %s: loops %d: want 0 (one per P) or more", cfg.Name, opts.Loops)
	}
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
		loops:    opts.Loops,
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
	if s.ln != nil {
		return nil
	}
	if s.draining {
		return fmt.Errorf("listen for service %s: %w", s.name, net.ErrClosed)
	}
	cfg := s.cfg.Load()
	ln, err := listen(context.Background(), cfg.Listen, cfg.ReusePort)
	if err != nil {
		return fmt.Errorf("listen for service %s on %s: %w", s.name, cfg.Listen, err)
	}
	s.ln = ln
	return nil
}

// Addr returns the bound address, or nil before Listen.
func (s *Service) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Active returns the number of open client connections, including those
// still reading a PROXY header or dialing a backend.
func (s *Service) Active() int { return int(s.active.Load()) }

// Reconfigure applies cfg to connections accepted from now on; open ones
// keep the settings they started with. A changed listen address is not
// handled here: the caller starts a new Service for it. An invalid cfg is
// logged and ignored.
func (s *Service) Reconfigure(cfg Config) {
	st, err := newSettings(cfg)
	if err != nil {
		s.log.Error("reconfigure rejected", "err", err)
		return
	}
	s.cfg.Store(st)
}

// Serve runs the event loops, which accept connections until ctx is done
// or Shutdown closes the listener; then it returns nil, and open
// connections go on until Shutdown. Accept errors such as EMFILE are
// retried with backoff, never returned.
func (s *Service) Serve(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.lnClosed || s.eng != nil {
		s.mu.Unlock()
		return nil
	}
	n := s.loops
	if n == 0 {
		n = runtime.GOMAXPROCS(0)
	}
	e, err := newEngine(s, s.ln, n)
	if err != nil {
		s.mu.Unlock()
		return fmt.Errorf("serve %s: %w", s.name, err)
	}
	s.eng = e
	s.mu.Unlock()
	e.start()
	stop := context.AfterFunc(ctx, s.closeListener)
	defer stop()
	<-e.lnClosed
	return nil
}

// Shutdown drains the service in three steps: close the listener, wait for
// open connections to finish until ctx is done, then cut the rest (ended
// "drain"). It returns once every connection is closed; the number cut is
// logged, not returned as an error, because cutting at the deadline is the
// contract rather than a failure.
func (s *Service) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	eng := s.eng
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
		n := 0
		if eng != nil {
			n = eng.abortAll(EndDrain)
		}
		<-done
		s.log.Info("drain timeout: open connections closed", "count", n)
	}
	s.stopDials()
	if eng != nil {
		eng.stop()
	}
	return nil
}

// closeListener stops accepting; idempotent. It returns once no loop
// accepts any more, so no connection is added after it.
func (s *Service) closeListener() {
	s.mu.Lock()
	eng := s.eng
	if !s.lnClosed {
		s.lnClosed = true
		// Before Serve the listener is still Go's; after, the engine
		// has closed Go's descriptor and owns a duplicate.
		if eng == nil && s.ln != nil {
			if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				s.log.Warn("close listener", "err", err)
			}
		}
	}
	s.mu.Unlock()
	if eng != nil {
		eng.closeListener()
	}
}

type nopObserver struct{}

func (nopObserver) DialFailed(*backends.Backend, error) {}
func (nopObserver) DialSucceeded(*backends.Backend)     {}
