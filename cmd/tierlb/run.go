package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/tierlb/tierlb/admin"
	"github.com/tierlb/tierlb/health"
	"github.com/tierlb/tierlb/internal/portcap"
	"github.com/tierlb/tierlb/proxy"
	"github.com/tierlb/tierlb/proxy/udp"
)

// cmdRun serves until SIGTERM/SIGINT (ctx), then drains and exits 0. A bad
// config exits 1; a failure to bind or to serve exits 2.
func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	heap := stopHeapSampling(os.Getenv("GODEBUG"))
	l, code, done := configFromArgs("run", "tierlb [run] [--config FILE] [flags]\n       tierlb run --listen ADDR --backend A,B [flags]   (quick mode)", args, stdout, stderr)
	if done {
		return code
	}
	src, cfg := l.src, l.cfg
	log, level := newLogger(stderr, cfg.Log)
	ver, rev := buildVersion()
	plan := planProcs(cfg.Engine.Loops, hostProcs())
	plan.apply()
	gc := planGC(os.Getenv)
	gc.apply()
	heap.apply(cfg.Admin.Pprof)
	log.Info("starting tierlb", "version", ver, "commit", rev, "config", src.File, "services", len(cfg.Services),
		"event_loops", plan.loops, "gomaxprocs", plan.gomaxprocs, "gomaxprocs_was", plan.procs,
		"gogc", gc.percent, "gogc_was", gc.was, "io_uring", ioUringState(cfg.Engine.IOUring, proxy.IOUringProbe))
	raiseNoFileLimit(log)
	if err := serve(ctx, l, log, level, hostEnvironment(), plan.loops); err != nil {
		log.Error("tierlb stopped on a failure", "err", err)
		return exitRuntime
	}
	log.Info("tierlb stopped")
	return exitOK
}

// component is one long-running part of the process. Every component is
// joined by an errgroup: the first to fail stops the others, and the
// process exits 2.
type component struct {
	name string
	run  func(ctx context.Context) error
}

// serve wires the packages together and runs them until ctx is done.
//
// Docker discovery, when on (env decides docker.enabled: auto), is a
// component whose provider hands backends and label-declared services to
// the supervisor (its Sink), holds /readyz until its first full sync where
// a service needs it (see readiness), and answers health type docker. An
// engine that is down at start does not stop the process: static backends
// serve while the provider retries.
//
// loops is the number of event loops the process runs for all its
// services (procPlan).
func serve(ctx context.Context, l loaded, log *slog.Logger, level *slog.LevelVar, env environment, loops int) error {
	cfg := l.cfg
	reg, err := newRegistry()
	if err != nil {
		return err
	}
	// The data path's series, per service, are streamed (admin.Streamer)
	// rather than registered on reg.
	pm, err := proxy.NewMetrics(nil)
	if err != nil {
		return fmt.Errorf("proxy metrics: %w", err)
	}
	um, err := udp.NewMetrics(nil)
	if err != nil {
		return fmt.Errorf("udp metrics: %w", err)
	}
	hm, err := health.NewMetrics(reg)
	if err != nil {
		return fmt.Errorf("health metrics: %w", err)
	}
	reloads, err := newReloadCounter(reg)
	if err != nil {
		return fmt.Errorf("reload metrics: %w", err)
	}
	ports, portsKnown := localPorts(env, log)
	ready := &readiness{}
	evloops, err := proxy.NewLoopsWith(proxy.LoopsConfig{N: loops, Log: log, IOUring: cfg.Engine.IOUring})
	if err != nil {
		return err
	}
	// Until the loops are a component, an early return stops them here:
	// they start, find nothing to serve and close their descriptors.
	loopsRun := false
	defer func() {
		if !loopsRun {
			stopped, cancel := context.WithCancel(context.Background())
			cancel()
			_ = evloops.Run(stopped)
		}
	}()
	sup := newSupervisor(deps{Log: log, AccessLog: accessLogger(log), ProxyMetrics: pm, UDPMetrics: um, HealthMetrics: hm, Loops: evloops, Checks: health.NewChecks()}, ready)
	disc, watch, err := newDockerProvider(cfg, sup, env, log, reg)
	if err != nil {
		return err
	}
	var explain func() []admin.Explanation
	if disc != nil {
		sup.deps.Docker = containerHealth{disc}
		ready.setDiscovery(disc.Ready, watch.status)
		explain = explainFunc(disc, sup)
	}
	// Per-backend and per-service series are read from atomics at scrape
	// time and written out a series at a time (admin.Streamer).
	streamers := []admin.Streamer{admin.NewCollector(sup), pm, um}
	if portsKnown {
		streamers = append(streamers, newPortCapacity(ports, sup))
	}

	// Everything binds before anything serves, so a taken port fails the
	// start instead of leaving a half-running proxy.
	// With a hand-over socket, a running tierlb's sockets are taken
	// instead of bound; the services are held until they can route.
	var inh *inheritance
	if cfg.Handover.Socket != "" {
		if inh, err = fetchPredecessor(ctx, cfg.Handover.Socket, log); err != nil {
			return err
		}
		defer inh.abandon() // a failure before ready leaves the predecessor serving
		if inh != nil {
			sup.hold(inh)
		}
	}
	var adm *admin.Server
	if cfg.Admin.Listen != "" {
		adm = admin.New(admin.Options{
			Listen: cfg.Admin.Listen, Token: cfg.Admin.Token, Pprof: cfg.Admin.Pprof,
			Gatherer: reg, Streamers: streamers, Rejections: func(out map[string]uint64) { pm.Rejected(out); um.Dropped(out) },
			Services: sup, Ready: ready.Ready, Explain: explain, Logger: log,
		})
		ln, err := inh.admin(cfg.Admin.Listen)
		if err == nil && ln != nil {
			err = adm.Use(ln)
		} else if err == nil {
			err = adm.Listen()
		}
		if err != nil {
			return err
		}
	}
	if err := sup.Start(cfg); err != nil {
		if adm != nil {
			stopped, cancel := context.WithCancel(context.Background())
			cancel()
			_ = adm.Run(stopped) // closes the bound listener
		}
		return err
	}

	// The admin API outlives the drain so /readyz can say 503 during it;
	// it stops once the services are done.
	adminCtx, stopAdmin := context.WithCancel(context.Background())
	defer stopAdmin()
	loopsRun = true
	comps := []component{
		// The loops stop once ctx is done and every service has drained.
		{"event loops", evloops.Run},
		{"services", func(ctx context.Context) error {
			defer stopAdmin()
			return sup.Run(ctx)
		}},
		{"reload", newReloader(l, log, level, sup, disc, adm, reloads).Run},
	}
	if disc != nil {
		comps = append(comps, component{"docker discovery", disc.Run})
	}
	if portsKnown {
		w := &portcap.Warner{Settings: ports, Log: log}
		comps = append(comps, component{"local port watch", func(ctx context.Context) error {
			return w.Run(ctx, portSamples(sup))
		}})
	}
	if adm != nil {
		comps = append(comps, component{"admin", func(context.Context) error { return adm.Run(adminCtx) }})
	}
	// A hand-over to a successor ends this process as SIGTERM does: the
	// services drain, and it exits 0.
	runCtx, handedOver := context.WithCancel(ctx)
	defer handedOver()
	if path := cfg.Handover.Socket; path != "" {
		var af adminFiles
		if adm != nil {
			af = adm
		}
		ho, err := newHandover(path, inh, sup, ready, af, stopAdmin, log)
		if err != nil {
			return err
		}
		comps = append(comps, component{"hand-over", func(ctx context.Context) error { return ho.run(ctx, handedOver) }})
	}
	return runComponents(runCtx, comps)
}

// runComponents runs every component until ctx is done or one fails.
func runComponents(ctx context.Context, comps []component) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, c := range comps {
		g.Go(func() error {
			if err := c.run(gctx); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// newRegistry makes the process's Prometheus registry, with the Go and
// process collectors SPEC.md promises.
func newRegistry() (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register collector: %w", err)
		}
	}
	return reg, nil
}
