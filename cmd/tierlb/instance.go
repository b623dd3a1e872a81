package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/tierlb/tierlb/backends"
	"github.com/tierlb/tierlb/config"
	"github.com/tierlb/tierlb/health"
	"github.com/tierlb/tierlb/proxy"
	"github.com/tierlb/tierlb/proxy/udp"
)

// deps are the collaborators every service instance shares.
type deps struct {
	Log *slog.Logger
	// AccessLog gets the access log lines (accessLogger(Log)).
	AccessLog     *slog.Logger
	ProxyMetrics  *proxy.Metrics
	UDPMetrics    *udp.Metrics
	HealthMetrics *health.Metrics
	// Docker answers health type docker; nil when Docker discovery is off,
	// in which case the monitor runs as type none (validation refuses type
	// docker with docker.enabled false; with auto and no engine there are
	// no containers to check).
	Docker health.ContainerHealth
	// Loops are the process's event loops, shared by every service
	// (proxy.Options.Loops, udp.Options.Loops).
	Loops *proxy.Loops
	// Checks is the process's health check loop, shared by every
	// service's monitor.
	Checks *health.Checks
}

// healthConfig is a service's health settings as its monitor really runs
// them.
func (d deps) healthConfig(s *config.ServiceConfig) health.Config {
	hc := s.HealthMonitorConfig()
	if hc.Type == health.TypeDocker && d.Docker == nil {
		hc.Type = health.TypeNone
	}
	return hc
}

// instance is one running service: its backend set, health monitor and
// listener. The supervisor owns it and serializes calls to its methods.
type instance struct {
	log     *slog.Logger
	deps    deps
	cfg     config.ServiceConfig
	set     *backends.Set // for the instance's life: a reload reconfigures it
	monitor *health.Monitor
	svc     dataPath

	mu      sync.Mutex // guards the fields below against UpdateBackends
	static  []backends.Spec
	docker  []backends.Spec
	stopMon context.CancelFunc
	monDone <-chan struct{}

	stopServe context.CancelFunc
	served    <-chan struct{}
}

// newInstance builds a service from a validated config and the backends
// discovery already found for it; it does not bind.
func newInstance(cfg config.ServiceConfig, accessLog bool, discovered []backends.Spec, d deps) (*instance, error) {
	in := &instance{log: d.Log.With("service", cfg.Name), deps: d, cfg: cfg, docker: discovered}
	static, err := cfg.StaticSpecs()
	if err != nil {
		return nil, err
	}
	in.static = static
	policy, err := backends.ParsePolicy(cfg.Balance)
	if err != nil {
		return nil, fmt.Errorf("service %s: %w", cfg.Name, err)
	}
	hc := d.healthConfig(&cfg)
	in.set = backends.NewSet(cfg.Name, policy, cfg.SetOptions(hc.Type))
	if in.monitor, err = health.NewMonitor(in.set, hc, health.Options{Logger: d.Log, Metrics: d.HealthMetrics, Docker: d.Docker, Checks: d.Checks}); err != nil {
		in.set.Close()
		return nil, fmt.Errorf("service %s: %w", cfg.Name, err)
	}
	in.set.UpdateOwned(in.specsLocked())
	if in.svc, err = newDataPath(&cfg, accessLog, in.set, in.monitor.Passive(), d); err != nil {
		in.set.Close()
		return nil, err
	}
	return in, nil
}

// specsLocked is the list the set takes (UpdateOwned): discovery's own
// list when there are no static backends, which the provider never changes
// (docker.Sink), so its backends' specs are the provider's; else a new list
// of both.
func (in *instance) specsLocked() []backends.Spec {
	if len(in.static) == 0 {
		return in.docker
	}
	return slices.Concat(in.static, in.docker)
}

// listen binds the service's address, or takes it from what a predecessor
// handed over (inh, nil without one). A service with SNI names has no
// listener of its own: its front listens.
func (in *instance) listen(inh *inheritance) error {
	if len(in.cfg.SNI) > 0 {
		return in.svc.Listen()
	}
	return inh.listen(in.cfg.Name, in.cfg.Protocol, in.cfg.Listen, in.cfg.ReusePort, in.svc, in.svc.Listen)
}

// start runs the health monitor and the accept loop in the background. A
// Serve error (which only a broken listener causes) goes to fatal.
func (in *instance) start(fatal func(error)) {
	in.startMonitor()
	in.serve(fatal)
}

// serving reports whether the accept loop was started.
func (in *instance) serving() bool { return in.stopServe != nil }

// serve runs the accept loop in the background.
func (in *instance) serve(fatal func(error)) {
	ctx, cancel := context.WithCancel(context.Background())
	in.stopServe = cancel
	listen := in.cfg.Listen
	if la, err := config.ParseListenAddr(listen); err == nil && !la.IsRange() {
		// The port the kernel picked for port 0; a range is logged whole.
		if a := in.svc.Addr(); a != nil {
			listen = a.String()
		}
	}
	in.log.Info("serving", "listen", listen, "protocol", in.cfg.Protocol, "sni", in.cfg.SNI, "backends", len(in.static), "balance", in.cfg.Balance)
	if st, ok := in.svc.(starter); ok {
		in.served = st.Done()
		go func() { // it waits for the loops to run, then ends
			if err := st.Start(ctx); err != nil {
				fatal(fmt.Errorf("service %s: %w", in.cfg.Name, err))
			}
		}()
		return
	}
	served := make(chan struct{})
	in.served = served
	go func() {
		defer close(served)
		if err := in.svc.Serve(ctx); err != nil {
			fatal(fmt.Errorf("service %s: %w", in.cfg.Name, err))
		}
	}()
}

// starter is a data path that can serve without a goroutine parked for
// its life (proxy.Service): Start registers its listener in the loops and
// returns, Done is closed when Serve would return or Start failed.
// Hundreds of idle services then hold no goroutine and stack each.
type starter interface {
	Start(ctx context.Context) error
	Done() <-chan struct{}
}

// startMonitor starts the health monitor once. It keeps no goroutine
// while it runs (like a starter data path), so idle services cost no
// stack each; it logs a broken check loop itself.
func (in *instance) startMonitor() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stopMon != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := in.monitor.Start(ctx); err != nil {
		cancel()
		in.log.Error("health monitor not started", "err", err)
		return
	}
	in.stopMon, in.monDone = cancel, in.monitor.Done()
}

// stopListening closes the listener and waits for the accept loop to end,
// so that its address is free when this returns. Open connections go on.
func (in *instance) stopListening() {
	if in.stopServe != nil {
		in.stopServe()
		<-in.served
	}
}

// drain closes the listener if still open, lets open connections finish
// until ctx is done, cuts the rest, then stops health checks. An instance
// that never served (a reload rolled back) is closed the same way.
func (in *instance) drain(ctx context.Context) {
	in.stopListening()
	if err := in.svc.Shutdown(ctx); err != nil {
		in.log.Warn("drain", "err", err)
	}
	in.mu.Lock()
	stop, done, set := in.stopMon, in.monDone, in.set
	in.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	set.Close()
}

// reconfigure applies a changed config with the same listen address to new
// connections; open ones keep what they started with.
func (in *instance) reconfigure(cfg config.ServiceConfig, accessLog bool) error {
	if cfg.IsUDP() != in.cfg.IsUDP() {
		return fmt.Errorf("service %s: a %s service cannot become a %s one in place", cfg.Name, in.cfg.Protocol, cfg.Protocol)
	}
	apply, err := reconfiguration(in.svc, &cfg, accessLog)
	if err != nil {
		return err
	}
	static, err := cfg.StaticSpecs()
	if err != nil {
		return err
	}
	old := in.cfg
	in.mu.Lock()
	in.static = static
	if old.Backends.Docker == nil || cfg.Backends.Docker == nil {
		in.docker = nil
	}
	in.mu.Unlock()
	hc := in.deps.healthConfig(&cfg)
	policy, err := backends.ParsePolicy(cfg.Balance)
	if err != nil {
		return fmt.Errorf("service %s: %w", cfg.Name, err)
	}
	if err := in.monitor.Reconfigure(hc); err != nil {
		return fmt.Errorf("service %s: %w", cfg.Name, err)
	}
	// In place: backends keep their counters and health, so changing the
	// balance or the set's options never leaves the pool empty.
	in.set.Reconfigure(policy, cfg.SetOptions(hc.Type))
	in.mu.Lock()
	in.set.UpdateOwned(in.specsLocked())
	in.mu.Unlock()
	apply()
	in.cfg = cfg
	return nil
}

// updateDocker replaces the backends discovery found for the service.
func (in *instance) updateDocker(specs []backends.Spec) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.docker = specs // the provider never changes it (docker.Sink)
	in.set.UpdateOwned(in.specsLocked())
}

// currentSet returns the service's Set.
func (in *instance) currentSet() *backends.Set { return in.set }
