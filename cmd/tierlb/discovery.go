package main

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tierlb/tierlb/admin"
	"github.com/tierlb/tierlb/backends/docker"
	"github.com/tierlb/tierlb/config"
	"github.com/tierlb/tierlb/health"
)

// defaultDockerSocket is what docker.enabled: auto looks for when
// DOCKER_HOST is not set.
const defaultDockerSocket = "/var/run/docker.sock"

// environment is what the auto decision reads from the process's
// surroundings; tests replace it so they never depend on the machine.
type environment struct {
	getenv func(string) string
	exists func(path string) bool
	// netIPv4 is the namespace's /proc/sys/net/ipv4; nil: not known.
	netIPv4 fs.FS
}

func hostEnvironment() environment {
	return environment{
		getenv:  os.Getenv,
		exists:  func(path string) bool { _, err := os.Stat(path); return err == nil },
		netIPv4: os.DirFS(procNetIPv4),
	}
}

// dockerWanted decides whether Docker discovery runs, and says why in words
// for the start-up log.
func dockerWanted(d *config.DockerConfig, env environment) (bool, string) {
	switch d.Enabled {
	case "true":
		return true, "docker.enabled is true"
	case "false":
		return false, "docker.enabled is false"
	}
	// An explicit docker.host (a socket proxy, a TLS endpoint) says the
	// user wants discovery even where neither of the defaults exists.
	if d.Host != "" {
		return true, "docker.enabled is auto and docker.host is set"
	}
	if h := env.getenv("DOCKER_HOST"); h != "" {
		return true, "docker.enabled is auto and DOCKER_HOST is set"
	}
	if env.exists(defaultDockerSocket) {
		return true, "docker.enabled is auto and " + defaultDockerSocket + " exists"
	}
	return false, "docker.enabled is auto, DOCKER_HOST is not set and " + defaultDockerSocket + " does not exist"
}

// newDockerProvider builds the provider when discovery is wanted, with sink
// receiving what it finds, and the watch on its engine; nils (and no error)
// when discovery is off. Nothing talks to the engine until the provider
// runs, so an engine that is down at start only delays readiness where a
// service waits for discovery.
func newDockerProvider(cfg *config.Config, sink docker.Sink, env environment, log *slog.Logger, reg prometheus.Registerer) (*docker.Provider, *engineWatch, error) {
	on, why := dockerWanted(&cfg.Docker, env)
	if !on {
		log.Info("docker discovery off", "why", why)
		for _, s := range cfg.Services {
			if s.Backends.Docker != nil {
				log.Warn("service has a docker backend block but docker discovery is off: only its static backends serve", "service", s.Name)
			}
		}
		return nil, nil, nil
	}
	m, err := docker.NewMetrics(reg)
	if err != nil {
		return nil, nil, fmt.Errorf("discovery metrics: %w", err)
	}
	watch, err := newEngineWatch(cfg.Docker.Host, reg)
	if err != nil {
		return nil, nil, err
	}
	p, err := docker.New(cfg.Docker.ProviderConfig(), cfg.DockerSelectors(), sink, docker.Options{Logger: log, Metrics: m, Client: watch, OnList: watch.record})
	if err != nil {
		return nil, nil, err
	}
	log.Info("docker discovery on", "why", why, "label_prefix", cfg.Docker.LabelPrefix, "label_services", cfg.Docker.LabelServices)
	return p, watch, nil
}

// containerHealth answers health type docker from the provider. A container
// without a HEALTHCHECK counts as healthy: SPEC routes it (only a
// HEALTHCHECK that says otherwise keeps a container out), and the provider
// already routes it, so the monitor must not hold it down for ever.
type containerHealth struct {
	p health.ContainerHealth
}

func (c containerHealth) ContainerHealth(ctx context.Context, id string) (string, error) {
	st, err := c.p.ContainerHealth(ctx, id)
	if err == nil && (st == "none" || st == "") {
		return "healthy", nil
	}
	return st, err
}

// explainFunc adapts the provider's explanations to the admin API's,
// adding each running service's server names.
func explainFunc(p *docker.Provider, sup *supervisor) func() []admin.Explanation {
	return func() []admin.Explanation {
		in := p.Explain()
		names := map[string][]string{}
		for _, s := range sup.Services() {
			names[s.Name] = s.SNI
		}
		out := make([]admin.Explanation, len(in))
		for i, e := range in {
			out[i] = explanation(e, names[e.Service])
		}
		return out
	}
}

// explanation is e for the admin API, with its service's server names.
// A test holds it to copying every field.
func explanation(e docker.Explanation, sni []string) admin.Explanation {
	return admin.Explanation{
		Container: e.Container, Name: e.Name, Service: e.Service, Task: e.Task, Node: e.Node, Slot: e.Slot,
		Network: e.Network, Address: e.Address, Routed: e.Routed, Reason: e.Reason, Warnings: e.Warnings, SNI: sni,
	}
}
