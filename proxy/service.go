package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tierlb/tierlb/backends"
)

// Options are a Service's collaborators; nil fields mean none.
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
	// Loops is how many event loops the epoll engine runs for the
	// service; 0 means GOMAXPROCS. ReserveProc returns the value to use.
	Loops int
}

// settings is a Config with what is derived from it once per
// (re)configuration instead of once per connection.
type settings struct {
	Config
	dialer       *net.Dialer
	proxyVersion byte // 0: send no PROXY header
	mode         copyMode
}

func newSettings(cfg Config, force copyMode) (*settings, error) {
	st := &settings{Config: cfg, dialer: newDialer(cfg.Timeouts.connect()), mode: force}
	switch cfg.ProxyProtocol {
	case "":
	case "v1":
		st.proxyVersion = 1
	case "v2":
		st.proxyVersion = 2
	default:
		return nil, fmt.Errorf("service %s: proxy_protocol %q: want \"\", v1 or v2", cfg.Name, cfg.ProxyProtocol)
	}
	if st.mode == copyAuto {
		st.mode = copyBuffer
		if cfg.ZeroCopy {
			st.mode = copyHybrid
		}
	}
	return st, nil
}

// Service is one load-balanced TCP service: a listener, its accept loop and
// the connections it proxies to the backends of its pool.
type Service struct {
	name     string
	pools    Pools
	log      *slog.Logger
	access   *slog.Logger // access log lines
	metrics  *serviceMetrics
	observer DialObserver
	cp       *copier
	cfg      atomic.Pointer[settings]
	force    copyMode // tests and benchmarks pin a copy mode

	// engine moves the connections: the goroutine path or the epoll
	// loops (engine*.go), chosen by TIERLB_ENGINE; eng is the running
	// epoll engine (guarded by mu).
	engine engineKind
	eng    *engine
	loops  int
	// pipeIdleAfter is pipeIdle; tests lengthen it to observe the pool.
	pipeIdleAfter time.Duration

	// stopDials cancels dials in progress when connections are cut.
	dialCtx   context.Context
	stopDials context.CancelFunc

	active atomic.Int64 // open client connections

	mu       sync.Mutex
	ln       *net.TCPListener
	lnClosed bool
	closed   chan struct{} // closed with the listener: ends backoff waits
	draining bool
	conns    map[*conn]struct{}
	wg       sync.WaitGroup // one per connection goroutine
}

// NewService checks cfg and returns a service that is not yet listening.
func NewService(cfg Config, pools Pools, opts Options) (*Service, error) {
	if pools == nil {
		return nil, fmt.Errorf("service %s: no backend pools", cfg.Name)
	}
	st, err := newSettings(cfg, copyAuto)
	if err != nil {
		return nil, err
	}
	kind, err := engineFromEnv()
	if err != nil {
		return nil, fmt.Errorf("service %s: %w", cfg.Name, err)
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
		cp:       newCopier(),
		closed:   make(chan struct{}),
		conns:    make(map[*conn]struct{}),
		engine:   kind,
		loops:    opts.Loops,

		pipeIdleAfter: pipeIdle,
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
	st, err := newSettings(cfg, s.force)
	if err != nil {
		s.log.Error("reconfigure rejected", "err", err)
		return
	}
	s.cfg.Store(st)
}

// Serve accepts connections until ctx is done or Shutdown closes the
// listener, then returns nil; open connections go on until Shutdown. Accept
// errors such as EMFILE are retried with backoff, never returned.
func (s *Service) Serve(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	if s.engine == engineEpoll {
		return s.serveEpoll(ctx)
	}
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	stop := context.AfterFunc(ctx, s.closeListener)
	defer stop()
	return s.acceptLoop(ctx, ln)
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
		s.mu.Lock()
		cut := make([]*conn, 0, len(s.conns))
		for c := range s.conns {
			cut = append(cut, c)
		}
		s.mu.Unlock()
		for _, c := range cut {
			c.abort(EndDrain, false)
		}
		n := len(cut)
		if eng != nil {
			n += eng.abortAll(EndDrain)
		}
		<-done
		s.log.Info("drain timeout: open connections closed", "count", n)
	}
	s.stopDials()
	if eng != nil {
		eng.stop()
	}
	s.cp.pipes.close()
	return nil
}

// closeListener stops accepting; idempotent. With the epoll engine it
// returns once no loop accepts any more.
func (s *Service) closeListener() {
	s.mu.Lock()
	eng := s.eng
	if !s.lnClosed {
		s.lnClosed = true
		close(s.closed)
		if s.ln != nil {
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
