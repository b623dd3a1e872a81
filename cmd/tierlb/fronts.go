package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/tierlb/tierlb/config"
	"github.com/tierlb/tierlb/proxy"
)

// Services that set sni share their listen address: one front listens on
// it, reads each ClientHello and hands the connection to the service whose
// names match. The supervisor keeps one front per such address, built
// from the running instances after every Start and Apply.

// front is the listener of an address that sni services share.
type front struct {
	log     *slog.Logger
	addr    config.ListenAddr
	f       *proxy.Front
	members []string // the services routed to, by name, for logs

	stopServe context.CancelFunc
	served    chan struct{}
}

// sharedAddr returns the address an sni service shares with others.
func sharedAddr(sc *config.ServiceConfig) (config.ListenAddr, bool) {
	if len(sc.SNI) == 0 {
		return config.ListenAddr{}, false
	}
	la, err := config.ParseListenAddr(sc.Listen)
	return la, err == nil
}

// frontGroups groups the sni instances by the address they share, each
// group in name order.
func frontGroups(instances map[string]*instance) map[config.ListenAddr][]*instance {
	groups := map[config.ListenAddr][]*instance{}
	for _, name := range slices.Sorted(maps.Keys(instances)) {
		in := instances[name]
		if la, ok := sharedAddr(&in.cfg); ok {
			groups[la] = append(groups[la], in)
		}
	}
	return groups
}

func newFront(la config.ListenAddr, members []*instance, accessLog bool, d deps) (*front, error) {
	cfgs := make([]config.ServiceConfig, len(members))
	for i, in := range members {
		cfgs[i] = in.cfg
	}
	pc, err := config.FrontConfig(cfgs, accessLog)
	if err != nil {
		return nil, err
	}
	f, err := proxy.NewFront(pc, proxy.Options{Logger: d.Log, AccessLog: d.AccessLog, Metrics: d.ProxyMetrics, Loops: d.Loops})
	if err != nil {
		return nil, err
	}
	return &front{log: d.Log.With("listen", la.String()), addr: la, f: f}, nil
}

// route points the front at members, with their current settings.
func (fr *front) route(members []*instance, accessLog bool) error {
	cfgs := make([]config.ServiceConfig, len(members))
	svcs := make([]*proxy.Service, len(members))
	names := make([]string, len(members))
	for i, in := range members {
		svc, ok := in.svc.(*proxy.Service)
		if !ok { // validation keeps sni to TCP services
			return fmt.Errorf("service %s: sni routes only TCP services", in.cfg.Name)
		}
		cfgs[i], svcs[i], names[i] = in.cfg, svc, in.cfg.Name
	}
	pc, err := config.FrontConfig(cfgs, accessLog)
	if err != nil {
		return err
	}
	fr.f.Reconfigure(pc)
	if err := fr.f.SetRoutes(svcs); err != nil {
		return err
	}
	if !slices.Equal(names, fr.members) && fr.served != nil {
		fr.log.Info("sni routes", "services", strings.Join(names, ","))
	}
	fr.members = names
	return nil
}

func (fr *front) listen(inh *inheritance) error {
	if err := inh.listen(strings.Join(fr.members, ","), config.ProtocolTCP, fr.addr.String(), false, fr.f, fr.f.Listen); err != nil {
		return &bindError{Service: strings.Join(fr.members, ","), Listen: fr.addr.String(), Err: errors.Unwrap(err)}
	}
	return nil
}

// start serves in the background; a Serve error goes to fatal.
func (fr *front) start(fatal func(error)) {
	ctx, cancel := context.WithCancel(context.Background())
	fr.stopServe, fr.served = cancel, make(chan struct{})
	fr.log.Info("serving sni routes", "services", strings.Join(fr.members, ","), "bound", fr.f.Addr().String())
	go func() {
		defer close(fr.served)
		if err := fr.f.Serve(ctx); err != nil {
			fatal(fmt.Errorf("listen %s: %w", fr.addr, err))
		}
	}()
}

// stopListening closes the listener and waits for Serve to return.
func (fr *front) stopListening() {
	if fr.stopServe != nil {
		fr.stopServe()
		<-fr.served
	}
}

// drain stops listening and ends the connections still reading their
// ClientHello, at ctx's end at the latest; routed ones are their
// services'.
func (fr *front) drain(ctx context.Context) {
	fr.stopListening()
	if err := fr.f.Shutdown(ctx); err != nil {
		fr.log.Warn("drain", "err", err)
	}
}

// startFronts builds and binds the fronts of the instances Start built,
// before anything serves. On error the fronts bound so far are closed.
func (s *supervisor) startFronts(built []*instance, accessLog bool) ([]*front, error) {
	var fronts []*front
	byName := map[string]*instance{}
	for _, in := range built {
		byName[in.cfg.Name] = in
	}
	groups := frontGroups(byName)
	for _, la := range slices.SortedFunc(maps.Keys(groups), compareAddr) {
		fr, err := newFront(la, groups[la], accessLog, s.deps)
		if err == nil {
			err = fr.route(groups[la], accessLog)
		}
		if err == nil {
			err = fr.listen(s.inherit)
		}
		if err != nil {
			closeFronts(fronts)
			return nil, err
		}
		fronts = append(fronts, fr)
	}
	return fronts, nil
}

// syncFrontsLocked makes the fronts match the running instances after a
// reload: new shared addresses get a front, the others route to their
// services' current names and settings. Fronts no longer wanted were
// stopped by applyLocked (stopUnwantedFronts).
func (s *supervisor) syncFrontsLocked(accessLog bool, fromLabels map[string]bool) error {
	var errs []error
	groups := frontGroups(s.instances)
	for _, la := range slices.SortedFunc(maps.Keys(groups), compareAddr) {
		members := groups[la]
		if fr, ok := s.fronts[la]; ok {
			if err := fr.route(members, accessLog); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		fr, err := newFront(la, members, accessLog, s.deps)
		if err == nil {
			err = fr.route(members, accessLog)
		}
		if err == nil {
			err = fr.listen(s.inherit)
		}
		if err != nil {
			if allFromLabels(members, fromLabels) {
				// As for a label-declared service of its own: a container
				// cannot make a reload fail.
				s.log.Error("label-declared sni services not started", "listen", la.String(), "err", err)
				continue
			}
			errs = append(errs, err)
			continue
		}
		s.fronts[la] = fr
		s.launchFront(fr)
	}
	return errors.Join(errs...)
}

// unwantedFronts returns the fronts whose address no service of the new
// configuration shares any more.
func (s *supervisor) unwantedFronts(services []config.ServiceConfig) []*front {
	want := map[config.ListenAddr]bool{}
	for i := range services {
		if la, ok := sharedAddr(&services[i]); ok {
			want[la] = true
		}
	}
	var out []*front
	for la, fr := range s.fronts {
		if !want[la] {
			out = append(out, fr)
		}
	}
	return out
}

// frontAddr returns the bound address of the front an sni service is
// reached through, "" when there is none.
func (s *supervisor) frontAddr(sc *config.ServiceConfig) string {
	la, ok := sharedAddr(sc)
	if !ok {
		return ""
	}
	if fr, ok := s.fronts[la]; ok {
		if a := fr.f.Addr(); a != nil {
			return a.String()
		}
	}
	return ""
}

func allFromLabels(members []*instance, fromLabels map[string]bool) bool {
	for _, in := range members {
		if !fromLabels[in.cfg.Name] {
			return false
		}
	}
	return true
}

// closeFronts closes fronts that were bound but never served.
func closeFronts(list []*front) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, fr := range list {
		fr.drain(ctx)
	}
}

func compareAddr(a, b config.ListenAddr) int { return strings.Compare(a.String(), b.String()) }
