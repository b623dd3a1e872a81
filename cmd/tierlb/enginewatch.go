package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/moby/moby/client"
	"github.com/prometheus/client_golang/prometheus"
)

// engineWatch is the Docker client the provider talks through, watched: it
// notes whether the engine answered the provider's last list or event
// stream, so that /readyz and tierlb_discovery_engine_up can tell an engine
// outage apart from the readiness it does not affect. Only the list and the
// event stream count: a failed inspect of one container says nothing about
// the engine.
type engineWatch struct {
	client.APIClient
	up prometheus.Gauge

	mu    sync.Mutex
	ok    bool // the last contact succeeded
	since time.Time
	err   error
}

// newEngineWatch builds the client the provider would build itself, from
// DOCKER_HOST and friends or host, and the gauge on reg.
func newEngineWatch(host string, reg prometheus.Registerer) (*engineWatch, error) {
	opts := []client.Opt{client.FromEnv}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	cli, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker client for %q: %w", host, err)
	}
	up := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "tierlb_discovery_engine_up",
		Help:        "1 when the discovery provider's last contact with its engine (list or event stream) succeeded.",
		ConstLabels: prometheus.Labels{"provider": "docker"},
	})
	if err := reg.Register(up); err != nil {
		return nil, fmt.Errorf("discovery engine metric: %w", err)
	}
	return &engineWatch{APIClient: cli, up: up, since: time.Now()}, nil
}

// Events passes the stream on, noting the error that ends it. The messages
// go straight through; only the one final error is relayed.
func (w *engineWatch) Events(ctx context.Context, opts client.EventsListOptions) client.EventsResult {
	res := w.APIClient.Events(ctx, opts)
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		for err := range res.Err {
			w.record(err)
			errs <- err
		}
	}()
	return client.EventsResult{Messages: res.Messages, Err: errs}
}

// record notes the outcome of a contact: the provider hands it each
// container list's (docker.Options.OnList). A canceled call is the provider
// stopping or starting over, not the engine's doing.
func (w *engineWatch) record(err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	ok := err == nil
	if ok != w.ok {
		w.since = time.Now()
	}
	w.ok, w.err = ok, err
	if ok {
		w.up.Set(1)
	} else {
		w.up.Set(0)
	}
}

// status is "" while the engine answers, else what is wrong since when.
func (w *engineWatch) status() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ok {
		return ""
	}
	if w.err == nil {
		return "docker engine at " + w.DaemonHost() + " not contacted yet"
	}
	return fmt.Sprintf("docker engine at %s unreachable since %s: %v",
		w.DaemonHost(), w.since.UTC().Format(time.RFC3339), w.err)
}
