//go:build linux

package udp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/tierlb/tierlb/internal/listenaddr"
	"github.com/tierlb/tierlb/proxy/internal/evloop"
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
	cfg      atomic.Pointer[settings]
	stats    statsTable

	active    atomic.Int64 // open sessions, every loop's
	portRange bool         // Listen is a port range: the access log names the port

	mu        sync.Mutex
	set       *evloop.Set // Options.Loops, or a set of its own
	held      bool        // the service holds set (Acquire)
	lns       []*listener // bound by Listen
	served    bool        // lns are registered in the loops
	drainOnce sync.Once
	closed    bool
	shut      chan struct{} // closed by Shutdown: Serve returns
	shutOnce  sync.Once
	nonEmpty  atomic.Int32  // draining listeners that still hold sessions
	emptied   chan struct{} // closed when the last draining listener empties
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
		set:      opts.Loops,
		shut:     make(chan struct{}),
		emptied:  make(chan struct{}),
	}
	s.cfg.Store(&settings{Config: cfg})
	s.metrics = opts.Metrics.initService(cfg.Name)
	if _, first, last, err := listenaddr.Split(cfg.Listen); err == nil {
		s.portRange = last > first
	}
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
	if s.lns != nil {
		return nil
	}
	if s.closed {
		return fmt.Errorf("listen for service %s: %w", s.name, net.ErrClosed)
	}
	cfg := s.cfg.Load()
	n := 1
	if s.set != nil {
		n = s.set.Len()
	}
	socks, err := listenSockets(cfg.Listen, n, cfg.ReusePort)
	if err != nil {
		return fmt.Errorf("listen for service %s on udp %s: %w", s.name, cfg.Listen, err)
	}
	for _, sk := range socks {
		s.lns = append(s.lns, &listener{
			s: s, fd: sk.fd, v6: sk.v6, pktinfo: sk.wildcard, addr: sk.addr, port: sk.addr.Port,
			sessions: make(map[netip.AddrPort]*session),
		})
	}
	s.m.addService(s)
	return nil
}

// Addr returns the bound address, or nil before Listen.
func (s *Service) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.lns) == 0 {
		return nil
	}
	return s.lns[0].addr
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

// Serve registers the service's sockets in the loops, one socket in each
// loop, and takes new sessions until ctx is done or Shutdown is called,
// then returns nil. Open sessions go on until Shutdown: their replies
// leave through the listening sockets, which therefore stay bound until
// then.
func (s *Service) Serve(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	if err := s.register(); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		s.drain()
	case <-s.shut:
	}
	return nil
}

// register adds the listeners to the loops: listener i to loop i, so that
// the sockets of a SO_REUSEPORT group land in different loops.
func (s *Service) register() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.served {
		return nil
	}
	if err := s.hold(); err != nil {
		return fmt.Errorf("serve %s: %w", s.name, err)
	}
	loops := s.set.Loops()
	var errs []error
	for i, ln := range s.lns {
		el := loops[i%len(loops)]
		if !el.Call(func() {
			if err := udpLoop(el).add(ln); err != nil {
				errs = append(errs, err)
			}
		}) {
			errs = append(errs, errors.New("the event loops have stopped"))
		}
	}
	s.served = true // what was registered is removed by Shutdown
	if len(errs) > 0 {
		return fmt.Errorf("serve %s: register socket: %w", s.name, errs[0])
	}
	return nil
}

// hold acquires the service's loops, made now when the service runs its
// own. With s.mu held.
func (s *Service) hold() error {
	if s.held {
		return nil
	}
	held, err := evloop.Hold(s.set, 1, s.log)
	if err != nil {
		return err
	}
	s.set, s.held = held, true
	return nil
}

// drain makes every listener refuse new sessions; idempotent.
func (s *Service) drain() {
	s.drainOnce.Do(func() {
		s.mu.Lock()
		var lns []*listener
		if s.served {
			lns = s.lns
		}
		s.mu.Unlock()
		s.nonEmpty.Store(int32(len(lns)))
		if len(lns) == 0 {
			close(s.emptied)
			return
		}
		for _, ln := range lns {
			if ln.lp == nil || !ln.lp.el.Post(ln.drain) {
				s.listenerEmpty()
			}
		}
	})
}

// listenerEmpty is called once by each draining listener that has no
// session left (or whose loop has stopped).
func (s *Service) listenerEmpty() {
	if s.nonEmpty.Add(-1) == 0 {
		close(s.emptied)
	}
}

// Shutdown drains the service: no new sessions, open ones run until they
// end by themselves or ctx is done, then the rest are cut (ended "drain")
// and the sockets closed. The number cut is logged, not returned as an
// error: cutting at the deadline is the contract rather than a failure.
// Other services in the same loops are not touched.
func (s *Service) Shutdown(ctx context.Context) error {
	s.shutOnce.Do(func() { close(s.shut) })
	s.drain()
	select {
	case <-s.emptied:
	case <-ctx.Done():
		if n := s.inLoops(func(ln *listener) int { return ln.abortAll(EndDrain) }); n > 0 {
			s.log.Info("drain timeout: open sessions closed", "count", n)
		}
	}
	s.mu.Lock()
	s.closed = true
	served := s.served
	s.mu.Unlock()
	if served {
		s.inLoops(func(ln *listener) int { return ln.lp.remove(ln, EndDrain) })
	}
	s.mu.Lock()
	for _, ln := range s.lns {
		_ = evloop.Close(ln.fd)
	}
	if s.held {
		s.held = false
		s.set.Release()
	}
	s.mu.Unlock()
	s.m.removeService(s)
	return nil
}

// inLoops runs fn for each registered listener in its loop, the loops at
// once, and returns the sum of the answers. Listeners of a loop that has
// stopped are skipped: the loop ended their sessions.
func (s *Service) inLoops(fn func(ln *listener) int) int {
	s.mu.Lock()
	lns := s.lns
	set := s.set
	s.mu.Unlock()
	if set == nil {
		return 0
	}
	var n atomic.Int64
	set.All(func(el *evloop.Loop) {
		for _, ln := range lns {
			if ln.lp != nil && ln.lp.el == el {
				n.Add(int64(fn(ln)))
			}
		}
	})
	return int(n.Load())
}

// call runs fn in each loop that serves the service, in turn, and waits
// for it; false if a loop has stopped. For inspection (tests), never on
// the data path.
func (s *Service) call(fn func(l *listener)) bool {
	s.mu.Lock()
	lns := s.lns
	s.mu.Unlock()
	for _, ln := range lns {
		if ln.lp == nil || !ln.lp.el.Call(func() { fn(ln) }) {
			return false
		}
	}
	return true
}
