package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/tierlb/tierlb/backends"
)

// fakeClient is an engine in memory. It embeds the SDK interface so that any
// call a test did not expect panics on the nil embedded value.
type fakeClient struct {
	client.APIClient

	mu         sync.Mutex
	ctrs       map[string]container.InspectResponse
	bridges    []network.Summary
	down       error // non-nil: every call fails with it
	inspects   int
	lists      int
	subscribes int
	sinces     []string // each subscription's Since
	streams    []*fakeStream
	// lastFilters is the filter of the latest Events call.
	lastFilters client.Filters
	// swarm is nil for an engine outside Swarm mode (see swarm_fake_test.go).
	swarm *fakeSwarm
}

type fakeStream struct {
	msgs chan events.Message
	errs chan error
}

func newFakeClient() *fakeClient { return &fakeClient{ctrs: map[string]container.InspectResponse{}} }

func (f *fakeClient) DaemonHost() string { return "unix:///fake.sock" }

func (f *fakeClient) ContainerList(_ context.Context, opts client.ContainerListOptions) (client.ContainerListResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	if f.down != nil {
		return client.ContainerListResult{}, f.down
	}
	var out []container.Summary
	for _, id := range slices.Sorted(maps.Keys(f.ctrs)) {
		c := f.ctrs[id]
		if !c.State.Running {
			continue
		}
		if want := opts.Filters["label"]; len(want) > 0 {
			ok := false
			for k := range want {
				_, ok = c.Config.Labels[k]
			}
			if !ok {
				continue
			}
		}
		out = append(out, summaryOf(c))
	}
	return client.ContainerListResult{Items: out}, nil
}

// GetBody answers as the engine's endpoints do: ContainerList's containers
// or TaskList's tasks, or ContainerInspect's container, in JSON.
func (f *fakeClient) GetBody(ctx context.Context, path string, filters client.Filters) (io.ReadCloser, error) {
	var items any
	var err error
	switch id, ok := strings.CutPrefix(path, "/containers/"); {
	case path == "/containers/json":
		var res client.ContainerListResult
		res, err = f.ContainerList(ctx, client.ContainerListOptions{Filters: filters})
		items = res.Items
	case ok && strings.HasSuffix(id, "/json"):
		var res client.ContainerInspectResult
		res, err = f.ContainerInspect(ctx, strings.TrimSuffix(id, "/json"), client.ContainerInspectOptions{})
		items = res.Container
	case path == "/tasks":
		var res client.TaskListResult
		res, err = f.TaskList(ctx, client.TaskListOptions{Filters: filters})
		items = res.Items
	default:
		return nil, fmt.Errorf("fake engine: no list at %s", path)
	}
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(items)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// summaryOf lists a container as the daemon does: what inspect says, but
// for the start time and the stop signal, with health in the status.
func summaryOf(c container.InspectResponse) container.Summary {
	s := container.Summary{ID: c.ID, Names: []string{c.Name, "/linker" + c.Name}, Labels: c.Config.Labels,
		State: container.StateRunning, Status: "Up 2 minutes"}
	if created, err := time.Parse(time.RFC3339Nano, c.Created); err == nil {
		s.Created = created.Unix()
	}
	if c.State.Paused {
		s.State, s.Status = container.StatePaused, "Up 2 minutes (Paused)"
	}
	if h := c.State.Health; h != nil {
		switch h.Status {
		case container.Starting:
			s.Status += " (health: starting)"
		default:
			s.Status += " (" + string(h.Status) + ")"
		}
	}
	for p := range c.Config.ExposedPorts {
		s.Ports = append(s.Ports, container.PortSummary{PrivatePort: p.Num(), Type: string(p.Proto())})
	}
	if c.NetworkSettings != nil {
		s.NetworkSettings = &container.NetworkSettingsSummary{Networks: c.NetworkSettings.Networks}
	}
	return s
}

func (f *fakeClient) ContainerInspect(_ context.Context, id string, _ client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inspects++
	if f.down != nil {
		return client.ContainerInspectResult{}, f.down
	}
	c, ok := f.ctrs[id]
	if !ok { // the engine also accepts a unique ID prefix
		for full, cand := range f.ctrs {
			if strings.HasPrefix(full, id) {
				c, ok = cand, true
			}
		}
	}
	if !ok {
		return client.ContainerInspectResult{}, cerrdefs.ErrNotFound.WithMessage("no such container: " + id)
	}
	return client.ContainerInspectResult{Container: c}, nil
}

func (f *fakeClient) NetworkList(context.Context, client.NetworkListOptions) (client.NetworkListResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down != nil {
		return client.NetworkListResult{}, f.down
	}
	return client.NetworkListResult{Items: slices.Clone(f.bridges)}, nil
}

func (f *fakeClient) Events(ctx context.Context, opts client.EventsListOptions) client.EventsResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subscribes++
	f.sinces = append(f.sinces, opts.Since)
	f.lastFilters = opts.Filters
	s := &fakeStream{msgs: make(chan events.Message), errs: make(chan error, 1)}
	if f.down != nil {
		s.errs <- f.down
	} else {
		f.streams = append(f.streams, s)
	}
	return client.EventsResult{Messages: s.msgs, Err: s.errs}
}

// send delivers an event on the latest stream, as the daemon would.
func (f *fakeClient) send(t *testing.T, m events.Message) {
	t.Helper()
	f.mu.Lock()
	s := f.streams[len(f.streams)-1]
	f.mu.Unlock()
	select {
	case s.msgs <- m:
	case <-time.After(5 * time.Second):
		t.Fatalf("event %s %s not consumed", m.Type, m.Action)
	}
}

// cut ends the latest stream with err.
func (f *fakeClient) cut(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.streams[len(f.streams)-1].errs <- err
}

func (f *fakeClient) set(c container.InspectResponse) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ctrs[c.ID] = c
}

func (f *fakeClient) remove(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.ctrs, id)
}

func (f *fakeClient) counts() (lists, inspects, subscribes int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lists, f.inspects, f.subscribes
}

// fakeCtr describes a running container for the fake engine.
type fakeCtr struct {
	id, name string
	created  time.Time
	labels   map[string]string
	nets     map[string]string // network name → IPv4
	exposed  []string          // "8080/tcp"
	health   string            // "" = no HEALTHCHECK
}

func (c fakeCtr) inspect() container.InspectResponse {
	r := container.InspectResponse{
		ID:      c.id,
		Name:    "/" + c.name,
		Created: c.created.Format(time.RFC3339Nano),
		State:   &container.State{Running: true, Status: "running", StartedAt: c.created.Format(time.RFC3339Nano)},
		Config:  &container.Config{Labels: c.labels, ExposedPorts: network.PortSet{}},
		NetworkSettings: &container.NetworkSettings{
			Networks: map[string]*network.EndpointSettings{},
		},
		HostConfig: &container.HostConfig{},
	}
	if c.health != "" {
		r.State.Health = &container.Health{Status: container.HealthStatus(c.health)}
	}
	for _, p := range c.exposed {
		r.Config.ExposedPorts[network.MustParsePort(p)] = struct{}{}
	}
	for name, ip := range c.nets {
		r.NetworkSettings.Networks[name] = &network.EndpointSettings{NetworkID: "id-" + name, IPAddress: netip.MustParseAddr(ip)}
	}
	return r
}

// fakeSink records what the provider publishes.
type fakeSink struct {
	mu      sync.Mutex
	specs   map[string][]backends.Spec
	updates int
	decls   []LabelService
	// early lists services declared before their backends were handed
	// over: they would serve a moment with none (Sink's contract).
	early   []string
	changed chan struct{}
	// first times a container appeared, and appeared draining, in a spec
	seen, drained map[string]time.Time
}

func newFakeSink() *fakeSink {
	return &fakeSink{specs: map[string][]backends.Spec{}, changed: make(chan struct{}, 1),
		seen: map[string]time.Time{}, drained: map[string]time.Time{}}
}

func (s *fakeSink) UpdateBackends(service string, specs []backends.Spec) {
	s.mu.Lock()
	s.specs[service] = slices.Clone(specs)
	s.updates++
	now := time.Now()
	for _, sp := range specs {
		if _, ok := s.seen[sp.Container]; !ok {
			s.seen[sp.Container] = now
		}
		if _, ok := s.drained[sp.Container]; !ok && sp.Drain != "" {
			s.drained[sp.Container] = now
		}
	}
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func (s *fakeSink) DeclareServices(decls []LabelService) {
	s.mu.Lock()
	for _, d := range decls {
		if _, ok := s.specs[d.Name]; !ok {
			s.early = append(s.early, d.Name)
		}
	}
	s.decls = decls
	s.mu.Unlock()
}

func (s *fakeSink) get(service string) []backends.Spec {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.specs[service])
}

// times returns when a container first appeared, and first drained.
func (s *fakeSink) times(id string) (seen, drained time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[id], s.drained[id]
}

func (s *fakeSink) updateCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.updates
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startProvider runs a provider against the fake until the test ends.
func startProvider(t *testing.T, cfg Config, sels []ServiceSelector, f *fakeClient, sink *fakeSink) *Provider {
	t.Helper()
	return startCountedProvider(t, cfg, sels, f, sink, nil)
}

// startCountedProvider is startProvider with the provider's metrics.
func startCountedProvider(t *testing.T, cfg Config, sels []ServiceSelector, f *fakeClient, sink *fakeSink, m *Metrics) *Provider {
	t.Helper()
	p, err := New(cfg, sels, sink, Options{Client: f, Logger: discardLogger(), Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	p.getenv = func(string) string { return "" }
	p.readFile = func(string) ([]byte, error) { return nil, errors.New("no mountinfo in tests") }
	p.backoffMin, p.backoffMax = time.Millisecond, 20*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return p
}
