package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tierlb/tierlb/admin"
	"github.com/tierlb/tierlb/backends/docker"
	"github.com/tierlb/tierlb/config"
)

// reloader re-reads the config on SIGHUP and, when config_watch is set, when
// the file's content changes. A config with errors is rejected as a whole
// (every error logged) and the running one stays.
type reloader struct {
	src     config.Source
	log     *slog.Logger
	level   *slog.LevelVar
	sup     *supervisor
	disc    *docker.Provider       // nil when Docker discovery is off
	adm     *admin.Server          // nil when admin.listen is ""
	reloads *prometheus.CounterVec // tierlb_config_reloads_total{result}

	cfg  *config.Config // the config in force
	hash [32]byte       // of the file content last loaded, good or bad
	// tooLarge notes that the watch has reported the file over the size
	// limit, so it does not report it every tick.
	tooLarge bool
	hup      chan os.Signal
}

// loaded is a config, where it came from, and the hash of the very file
// content it was parsed from (zero without a file).
type loaded struct {
	src  config.Source
	cfg  *config.Config
	hash [32]byte
}

// load reads the config file once and loads the config from those bytes.
func load(src config.Source) (loaded, error) {
	l := loaded{src: src}
	var data []byte
	if src.File != "" {
		var err error
		if data, err = config.ReadFile(src.File); err != nil {
			return l, err
		}
		l.hash = sha256.Sum256(data)
	}
	cfg, err := config.LoadData(src, data)
	l.cfg = cfg
	return l, err
}

func newReloadCounter(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tierlb_config_reloads_total",
		Help: "Config reloads (SIGHUP or file watch) by result.",
	}, []string{"result"})
	if err := reg.Register(c); err != nil {
		return nil, err
	}
	// Both series exist from the start, so alerts on errors work at once.
	c.WithLabelValues("ok")
	c.WithLabelValues("error")
	return c, nil
}

func newReloader(l loaded, log *slog.Logger, level *slog.LevelVar, sup *supervisor, disc *docker.Provider, adm *admin.Server, reloads *prometheus.CounterVec) *reloader {
	r := &reloader{src: l.src, cfg: l.cfg, hash: l.hash, log: log, level: level, sup: sup, disc: disc, adm: adm, reloads: reloads, hup: make(chan os.Signal, 1)}
	// Subscribed before Run so that a SIGHUP right after start is not lost
	// (nor fatal: its default action would end the process).
	signal.Notify(r.hup, syscall.SIGHUP)
	return r
}

// Run reloads on SIGHUP and on file changes until ctx is done.
func (r *reloader) Run(ctx context.Context) error {
	defer signal.Stop(r.hup)
	var tick <-chan time.Time
	var ticker *time.Ticker
	setWatch := func(every time.Duration) {
		if ticker != nil {
			ticker.Stop()
			ticker, tick = nil, nil
		}
		if every > 0 && r.src.File != "" {
			ticker = time.NewTicker(every)
			tick = ticker.C
		}
	}
	setWatch(r.cfg.ConfigWatch)
	if r.cfg.ConfigWatch > 0 && r.src.File == "" {
		r.log.Warn("config_watch is set but there is no config file to watch")
	}
	defer setWatch(0)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.hup:
			if data, err := r.read(); err != nil {
				r.reject("SIGHUP", err)
			} else {
				r.reload("SIGHUP", data)
			}
		case <-tick:
			r.watch()
		}
		setWatch(r.cfg.ConfigWatch)
	}
}

// watch reloads when the file's content has changed. A file it cannot read
// is left alone (an editor may be replacing it), except one over the size
// limit, which is reported once.
func (r *reloader) watch() {
	data, err := r.read()
	if err != nil {
		if errors.Is(err, config.ErrTooLarge) && !r.tooLarge {
			r.tooLarge = true
			r.reject("file changed", err)
		}
		return
	}
	r.tooLarge = false
	if sha256.Sum256(data) != r.hash {
		r.reload("file changed", data)
	}
}

// read reads the config file once for one reload; nil without a file.
func (r *reloader) read() ([]byte, error) {
	if r.src.File == "" {
		return nil, nil
	}
	return config.ReadFile(r.src.File)
}

// reject logs why a reload was refused and counts it; the running config
// stays.
func (r *reloader) reject(why string, err error) {
	// Counted before it is logged: whoever reads the log sees the count.
	r.reloads.WithLabelValues("error").Inc()
	log := r.log.With("trigger", why, "file", r.src.File)
	errs := config.Problems(err)
	log.Error("config reload rejected: the running config stays", "problems", len(errs))
	for _, e := range errs {
		log.Error("config problem", "err", e)
	}
}

// reload loads the config from data, the file content just read, and
// applies it.
func (r *reloader) reload(why string, data []byte) {
	log := r.log.With("trigger", why, "file", r.src.File)
	// The hash is kept even when the config has errors, so the watch does
	// not retry the same broken content every tick.
	if r.src.File != "" {
		r.hash = sha256.Sum256(data)
	}
	cfg, err := config.LoadData(r.src, data)
	if err != nil {
		r.reject(why, err)
		return
	}
	if cfg.Log.Format != r.cfg.Log.Format {
		log.Warn("log.format changes at the next restart", "running", r.cfg.Log.Format, "new", cfg.Log.Format)
	}
	if cfg.Engine.Loops != r.cfg.Engine.Loops {
		log.Warn("engine.loops changes at the next restart", "running", r.cfg.Engine.Loops, "new", cfg.Engine.Loops)
	}
	if cfg.Engine.IOUring != r.cfg.Engine.IOUring {
		log.Warn("engine.io_uring changes at the next restart", "running", r.cfg.Engine.IOUring, "new", cfg.Engine.IOUring)
	}
	if was, now := r.cfg.Admin, cfg.Admin; was.Listen != now.Listen || was.Pprof != now.Pprof {
		log.Warn("admin.listen and admin.pprof change at the next restart")
	}
	// The provider keeps the docker settings it started with; only turning
	// label services off applies at once (the supervisor stops them).
	was, now := r.cfg.Docker, cfg.Docker
	was.LabelServices, now.LabelServices = false, false
	if !reflect.DeepEqual(was, now) || (cfg.Docker.LabelServices && !r.cfg.Docker.LabelServices) {
		log.Warn("docker settings change at the next restart")
	}
	err = r.sup.Apply(cfg)
	// A failed Apply may have applied nothing (a new listener could not
	// bind) or all but one service; the supervisor knows which config runs.
	r.cfg = r.sup.current()
	if r.disc != nil {
		// The provider relists at once, so added docker blocks find their
		// replicas and names the file now takes stop being label services.
		r.disc.SetServices(r.cfg.DockerSelectors())
	}
	r.level.Set(r.cfg.Log.SlogLevel())
	if r.adm != nil && r.adm.Token() != r.cfg.Admin.Token {
		// Rotating the token needs no restart: POSTs from now on are
		// checked against the new one.
		r.adm.SetToken(r.cfg.Admin.Token)
		log.Info("admin token changed", "set", r.cfg.Admin.Token != "")
	}
	if err != nil {
		log.Error("config reload failed", "err", err, "applied", r.cfg == cfg)
		r.reloads.WithLabelValues("error").Inc()
		return
	}
	log.Info("config reloaded", "services", len(cfg.Services))
	r.reloads.WithLabelValues("ok").Inc()
}
