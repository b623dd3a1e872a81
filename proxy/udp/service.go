//go:build linux

package udp

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
)

// settings is a Config as the loops read it, swapped whole on reload.
type settings struct {
	Config
}

// Service is one load-balanced UDP service: its listening sockets, the
// loops that receive on them, and the sessions they proxy.
type Service struct {
	name     string
	pools    Pools
	log      *slog.Logger
	access   *slog.Logger
	metrics  *serviceMetrics
	m        *Metrics
	observer Observer
	nloops   int
	cfg      atomic.Pointer[settings]
	stats    statsTable

	active atomic.Int64 // open sessions, every loop's

	mu        sync.Mutex
	socks     []socket
	loops     []*loop
	wg        sync.WaitGroup // loop goroutines
	served    bool           // Serve started the loops
	drainOnce sync.Once
	closed    bool
	shut      chan struct{} // closed by Shutdown: Serve returns
	shutOnce  sync.Once
	nonEmpty  atomic.Int32  // draining loops that still hold sessions
	emptied   chan struct{} // closed when the last draining loop empties
}

// NewService checks cfg and returns a service that is not yet listening.
func NewService(cfg Config, pools Pools, opts Options) (*Service, error) {
	if pools == nil {
		return nil, fmt.Errorf("service %s: no backend pools", cfg.Name)
	}
	if err := check(&cfg); err != nil {
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
		m:        opts.Metrics,
		observer: obs,
		nloops:   max(opts.Loops, 1),
		shut:     make(chan struct{}),
		emptied:  make(chan struct{}),
	}
	s.cfg.Store(&settings{Config: cfg})
	s.metrics = opts.Metrics.initService(cfg.Name)
	return s, nil
}

// check validates what the data path itself relies on.
func check(cfg *Config) error {
	switch {
	case cfg.MaxSessions < 0:
		return fmt.Errorf("udp.max_sessions %d: want 0 (unlimited) or more", cfg.MaxSessions)
	case cfg.Responses < 0:
		return fmt.Errorf("udp.responses %d: want 0 (any) or more", cfg.Responses)
	case cfg.SessionTimeout < 0:
		return fmt.Errorf("udp.session_timeout %v: want a positive duration", cfg.SessionTimeout)
	}
	return nil
}

// Name returns the service's name.
func (s *Service) Name() string { return s.name }

// Active returns the number of open sessions.
func (s *Service) Active() int { return int(s.active.Load()) }

// Listen binds the service's sockets now, so that bind errors surface
// before serving. Serve calls it when it was not called.
func (s *Service) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.socks != nil {
		return nil
	}
	if s.closed {
		return fmt.Errorf("listen for service %s: %w", s.name, net.ErrClosed)
	}
	cfg := s.cfg.Load()
	socks, err := listenSockets(cfg.Listen, s.nloops, cfg.ReusePort)
	if err != nil {
		return fmt.Errorf("listen for service %s on udp %s: %w", s.name, cfg.Listen, err)
	}
	s.socks = socks
	s.m.addService(s)
	return nil
}

// Addr returns the bound address, or nil before Listen.
func (s *Service) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.socks) == 0 {
		return nil
	}
	return s.socks[0].addr
}

// Reconfigure applies cfg to datagrams from now on. Sessions keep their
// backends; the new session_timeout applies to every session, the other
// settings to sessions started from now on (responses to datagrams sent
// from now on). A changed listen address is not handled here: the caller
// starts a new Service for it. An invalid cfg is logged and ignored.
func (s *Service) Reconfigure(cfg Config) {
	if err := check(&cfg); err != nil {
		s.log.Error("reconfigure rejected", "err", err)
		return
	}
	s.cfg.Store(&settings{Config: cfg})
}

// Serve starts the loops and takes new sessions until ctx is done or
// Shutdown is called, then returns nil. Open sessions go on until
// Shutdown: their replies leave through the listening sockets, which
// therefore stay bound until then.
func (s *Service) Serve(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed || s.served {
		s.mu.Unlock()
		return nil
	}
	for _, sk := range s.socks {
		l, err := newLoop(s, sk.fd, sk.v6, sk.wildcard)
		if err != nil {
			for _, l := range s.loops {
				l.closeFDs()
			}
			s.loops = nil
			s.mu.Unlock()
			return fmt.Errorf("serve %s: %w", s.name, err)
		}
		s.loops = append(s.loops, l)
	}
	s.served = true
	for _, l := range s.loops {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			l.run()
		}()
	}
	s.mu.Unlock()
	select {
	case <-ctx.Done():
		s.drain()
	case <-s.shut:
	}
	return nil
}

// drain makes every loop refuse new sessions; idempotent.
func (s *Service) drain() {
	s.drainOnce.Do(func() {
		s.mu.Lock()
		loops := s.loops
		s.mu.Unlock()
		s.nonEmpty.Store(int32(len(loops)))
		if len(loops) == 0 {
			close(s.emptied)
			return
		}
		for _, l := range loops {
			if !l.post(request{kind: reqDrain}) {
				s.loopEmpty()
			}
		}
	})
}

// loopEmpty is called once by each draining loop that has no session
// left (or has stopped).
func (s *Service) loopEmpty() {
	if s.nonEmpty.Add(-1) == 0 {
		close(s.emptied)
	}
}

// Shutdown drains the service: no new sessions, open ones run until they
// end by themselves or ctx is done, then the rest are cut (ended "drain")
// and the sockets closed. The number cut is logged, not returned as an
// error: cutting at the deadline is the contract rather than a failure.
func (s *Service) Shutdown(ctx context.Context) error {
	s.shutOnce.Do(func() { close(s.shut) })
	s.drain()
	select {
	case <-s.emptied:
	case <-ctx.Done():
		if n := s.broadcast(reqAbortAll); n > 0 {
			s.log.Info("drain timeout: open sessions closed", "count", n)
		}
	}
	s.mu.Lock()
	s.closed = true
	served := s.served
	socks := s.socks
	s.mu.Unlock()
	if served {
		s.broadcast(reqStop)
		s.wg.Wait()
	} else {
		for _, sk := range socks {
			_ = sysClose(sk.fd)
		}
	}
	s.m.removeService(s)
	return nil
}

// broadcast posts a request to every loop and returns the sum of their
// answers.
func (s *Service) broadcast(kind reqKind) int {
	s.mu.Lock()
	loops := s.loops
	s.mu.Unlock()
	acks := make(chan int, len(loops))
	posted := 0
	for _, l := range loops {
		if l.post(request{kind: kind, done: acks}) {
			posted++
		}
	}
	n := 0
	for range posted {
		n += <-acks
	}
	return n
}

// call runs fn in each loop in turn and waits for it; false if a loop has
// stopped. For inspection (tests), never on the data path.
func (s *Service) call(fn func(l *loop)) bool {
	s.mu.Lock()
	loops := s.loops
	s.mu.Unlock()
	for _, l := range loops {
		done := make(chan int, 1)
		if !l.post(request{kind: reqCall, fn: func() { fn(l) }, done: done}) {
			return false
		}
		<-done
	}
	return true
}
