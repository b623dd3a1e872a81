package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/tierlb/tierlb/admin"
	"github.com/tierlb/tierlb/backends"
	"github.com/tierlb/tierlb/backends/docker"
	"github.com/tierlb/tierlb/config"
)

// supervisor runs the configured services and applies reloads to them. It
// is the admin API's view of the services (admin.Services) and the sink
// Docker discovery hands backends and label-declared services to
// (docker.Sink).
type supervisor struct {
	deps  deps
	log   *slog.Logger
	ready *readiness

	mu         sync.Mutex
	cfg        *config.Config
	instances  map[string]*instance
	discovered map[string][]backends.Spec     // by service, kept for services added later
	decls      map[string]docker.LabelService // label declarations, by name
	labelSvcs  []config.ServiceConfig         // the valid ones, as services
	fronts     map[config.ListenAddr]*front   // by the address sni services share
	draining   bool
	fatal      chan error // first Serve failure
	// inherit is what a predecessor handed over (nil: bind everything);
	// held keeps the services from accepting until release, so that a
	// process taking over accepts only once it can route.
	inherit *inheritance
	held    bool
	drains  sync.WaitGroup
}

func newSupervisor(d deps, ready *readiness) *supervisor {
	return &supervisor{
		deps:       d,
		log:        d.Log,
		ready:      ready,
		instances:  map[string]*instance{},
		discovered: map[string][]backends.Spec{},
		fronts:     map[config.ListenAddr]*front{},
		fatal:      make(chan error, 1),
	}
}

// bindError is a listener that could not be bound: a runtime failure (exit
// 2), as opposed to a config error.
type bindError struct {
	Service, Listen string
	Err             error
}

func (e *bindError) Error() string {
	return fmt.Sprintf("service %s cannot listen on %s: %v", e.Service, e.Listen, e.Err)
}

func (e *bindError) Unwrap() error { return e.Err }

// Start builds every service of cfg and binds all their listeners before any
// serves, so that a bind failure stops the process before it takes traffic.
// On error everything bound is closed again.
func (s *supervisor) Start(cfg *config.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var built []*instance
	for _, sc := range cfg.Services {
		in, err := newInstance(sc, cfg.Log.Access, s.discovered[sc.Name], s.deps)
		if err == nil {
			err = s.bind(in)
		}
		if err != nil {
			if in != nil {
				built = append(built, in)
			}
			closeAll(built)
			return err
		}
		built = append(built, in)
	}
	fronts, err := s.startFronts(built, cfg.Log.Access)
	if err != nil {
		closeAll(built)
		return err
	}
	for _, in := range built {
		s.instances[in.cfg.Name] = in
		s.launch(in)
	}
	for _, fr := range fronts {
		s.fronts[fr.addr] = fr
		s.launchFront(fr)
	}
	s.cfg = cfg
	s.ready.setConfig(cfg)
	s.ready.setBound()
	return nil
}

func (s *supervisor) bind(in *instance) error {
	if err := in.listen(s.inherit); err != nil {
		return &bindError{Service: in.cfg.Name, Listen: in.cfg.Listen, Err: errors.Unwrap(err)}
	}
	return nil
}

// failed records a Serve failure; the first one ends Run.
func (s *supervisor) failed(err error) {
	select {
	case s.fatal <- err:
	default:
	}
}

// closeAll closes instances that were bound but never served.
func closeAll(list []*instance) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // nothing to wait for: no connection was ever accepted
	for _, in := range list {
		in.drain(ctx)
	}
}

// Run waits until ctx is done or a service fails, then drains: /readyz turns
// 503, every listener closes, open connections get shutdown.drain_timeout,
// the rest are cut. It returns once all are closed, including services a
// reload removed that are still draining; the error is the failure, if any.
func (s *supervisor) Run(ctx context.Context) error {
	var err error
	select {
	case <-ctx.Done():
	case err = <-s.fatal:
	}
	s.ready.setDraining()
	s.mu.Lock()
	s.draining = true
	timeout := s.cfg.Shutdown.DrainTimeout
	list := make([]*instance, 0, len(s.instances))
	for _, in := range s.instances {
		list = append(list, in)
	}
	fronts := slices.Collect(maps.Values(s.fronts))
	s.mu.Unlock()

	s.log.Info("draining", "services", len(list), "drain_timeout", timeout)
	drainCtx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// Shutdown closes each listener first thing, so all of them stop
	// accepting at once; then the waits run side by side.
	var wg sync.WaitGroup
	for _, in := range list {
		wg.Go(func() { in.drain(drainCtx) })
	}
	for _, fr := range fronts {
		wg.Go(func() { fr.drain(drainCtx) })
	}
	wg.Wait()
	s.drains.Wait()
	s.log.Info("drained")
	return err
}

// Apply makes the running services match cfg (a reload): services that are
// new or whose listen address changed start, removed ones stop listening at
// once and drain in the background, changed ones apply their new settings
// to new connections. New listeners are bound before anything is removed,
// except where a new listener needs the address of a removed one; a bind
// failure before that point leaves everything as it was. Label-declared
// services run alongside the file's wherever the file leaves them room.
func (s *supervisor) Apply(cfg *config.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return errors.New("shutting down")
	}
	return s.applyLocked(cfg)
}

func (s *supervisor) applyLocked(cfg *config.Config) error {
	services, fromLabels := s.wantedLocked(cfg)
	want := map[string]config.ServiceConfig{}
	for _, sc := range services {
		want[sc.Name] = sc
	}
	var removed []*instance
	for name, in := range s.instances {
		if sc, ok := want[name]; !ok || !sameListener(&sc, &in.cfg) {
			removed = append(removed, in)
		}
	}
	unwanted := s.unwantedFronts(services)
	var early, late []*instance // bound before / after the removals
	for _, sc := range services {
		if in, ok := s.instances[sc.Name]; ok && sameListener(&sc, &in.cfg) {
			continue
		}
		in, err := newInstance(sc, cfg.Log.Access, s.discovered[sc.Name], s.deps)
		if err != nil {
			closeAll(append(early, late...))
			return err
		}
		if takesAddressOf(&sc, removed) || frontHolds(&sc, unwanted) {
			late = append(late, in)
		} else {
			early = append(early, in)
		}
	}
	var bound []*instance
	for i, in := range early {
		err := s.bind(in)
		switch {
		case err == nil:
			bound = append(bound, in)
		case fromLabels[in.cfg.Name]:
			// A container cannot make a reload fail: its service is left
			// out, and retried when the declarations next change.
			s.log.Error("label-declared service not started", "service", in.cfg.Name, "container", s.decls[in.cfg.Name].Container, "err", err)
			closeAll([]*instance{in})
		default:
			closeAll(slices.Concat(bound, early[i:], late))
			return err
		}
	}
	early = bound

	// The point of no return: from here on problems are reported, and
	// what can be applied is.
	var errs []error
	drainTimeout := cfg.Shutdown.DrainTimeout
	for _, in := range removed {
		in.stopListening()
		delete(s.instances, in.cfg.Name)
		if in.cfg.IsUDP() && addressNeeded(in, late) {
			// A UDP service's socket carries its sessions' replies, so it
			// stays bound while they drain; a service that takes over the
			// address needs it now, and the sessions end at once.
			in.log.Info("service removed: its address is taken over, sessions closed", "active", in.svc.Active())
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			in.drain(ctx)
			if _, again := want[in.cfg.Name]; !again {
				s.deps.forgetMetrics(in.cfg.Name)
			}
			continue
		}
		in.log.Info("service removed: draining", "drain_timeout", drainTimeout, "active", in.svc.Active())
		s.drains.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
			defer cancel()
			in.drain(ctx)
			// Its series go unless the name is in use again (a listen
			// change re-adds the service at once).
			s.mu.Lock()
			if _, again := s.instances[in.cfg.Name]; !again {
				s.deps.forgetMetrics(in.cfg.Name)
			}
			s.mu.Unlock()
			in.log.Info("service drained")
		})
	}
	for _, fr := range unwanted {
		fr.stopListening()
		delete(s.fronts, fr.addr)
		fr.log.Info("shared listen address removed: draining")
		s.drains.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
			defer cancel()
			fr.drain(ctx)
			s.mu.Lock()
			if _, again := s.fronts[fr.addr]; !again {
				s.deps.ProxyMetrics.ForgetService(fr.addr.String())
			}
			s.mu.Unlock()
		})
	}
	for _, in := range late {
		if err := s.bind(in); err != nil {
			closeAll([]*instance{in})
			if fromLabels[in.cfg.Name] {
				s.log.Error("label-declared service not started", "service", in.cfg.Name, "container", s.decls[in.cfg.Name].Container, "err", err)
			} else {
				errs = append(errs, err)
			}
			continue
		}
		early = append(early, in)
	}
	for _, in := range early {
		s.instances[in.cfg.Name] = in
		s.launch(in)
	}
	for _, sc := range services {
		in, ok := s.instances[sc.Name]
		if !ok || slices.Contains(early, in) {
			continue
		}
		if reflect.DeepEqual(in.cfg, sc) && cfg.Log.Access == s.cfg.Log.Access {
			continue
		}
		if err := in.reconfigure(sc, cfg.Log.Access); err != nil {
			errs = append(errs, err)
			continue
		}
		in.log.Info("service reconfigured")
	}
	if err := s.syncFrontsLocked(cfg.Log.Access, fromLabels); err != nil {
		errs = append(errs, err)
	}
	s.cfg = cfg
	s.ready.setConfig(cfg)
	return errors.Join(errs...)
}

// sameListener reports whether a service keeps its socket across a
// reload, so that the running instance is reconfigured in place: the same
// address and protocol, and sni set in both or in neither.
func sameListener(a, b *config.ServiceConfig) bool {
	return a.Listen == b.Listen && a.IsUDP() == b.IsUDP() && (len(a.SNI) > 0) == (len(b.SNI) > 0)
}

// frontHolds reports whether one of the fronts (shared TLS ports) holds an
// address the TCP service sc needs.
func frontHolds(sc *config.ServiceConfig, fronts []*front) bool {
	if sc.IsUDP() {
		return false
	}
	la, err := config.ParseListenAddr(sc.Listen)
	if err != nil {
		return false
	}
	for _, fr := range fronts {
		if fr.addr.Conflicts(la) {
			return true
		}
	}
	return false
}

// takesAddressOf reports whether sc needs an address one of the removed
// services still holds (TCP and UDP sockets do not share ports' space).
func takesAddressOf(sc *config.ServiceConfig, removed []*instance) bool {
	la, err := config.ParseListenAddr(sc.Listen)
	if err != nil {
		return false
	}
	for _, in := range removed {
		if in.cfg.IsUDP() != sc.IsUDP() {
			continue
		}
		if ra, err := config.ParseListenAddr(in.cfg.Listen); err == nil && ra.Conflicts(la) {
			return true
		}
	}
	return false
}

// addressNeeded reports whether one of the new instances needs the address
// of the removed instance in.
func addressNeeded(in *instance, late []*instance) bool {
	for _, n := range late {
		if takesAddressOf(&n.cfg, []*instance{in}) {
			return true
		}
	}
	return false
}

// Services lists the running services by name, for the admin API.
func (s *supervisor) Services() []admin.ServiceInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]admin.ServiceInfo, 0, len(s.instances))
	for _, in := range s.instances {
		out = append(out, admin.ServiceInfo{Name: in.cfg.Name, Listen: in.cfg.Listen, Protocol: in.cfg.Protocol, SNI: in.cfg.SNI, Set: in.currentSet()})
	}
	slices.SortFunc(out, func(a, b admin.ServiceInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// UpdateBackends takes a service's full list of discovered backends (the
// Docker provider's Sink). Static backends stay alongside them.
func (s *supervisor) UpdateBackends(service string, specs []backends.Spec) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.discovered[service] = specs // the provider never changes it (docker.Sink)
	if in, ok := s.instances[service]; ok {
		in.updateDocker(specs)
	}
}

// current returns the config in force.
func (s *supervisor) current() *config.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg
}

// addr returns a service's bound address, for logs and tests.
func (s *supervisor) addr(service string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in, ok := s.instances[service]; ok {
		if a := in.svc.Addr(); a != nil {
			return a.String()
		}
		return s.frontAddr(&in.cfg)
	}
	return ""
}
