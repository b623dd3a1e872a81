package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/moby/moby/client"
	"github.com/tierlb/tierlb/backends"
)

// apiTimeout bounds every engine call but the event stream, so a hung daemon
// turns into an error and a resync rather than a stuck provider.
const apiTimeout = 10 * time.Second

// Provider discovers Docker replicas; see the package doc.
type Provider struct {
	cfg     Config
	sink    Sink
	log     *slog.Logger
	metrics *Metrics
	cli     client.APIClient
	raw     getter // lists and inspects, decoded here (see httpGetter)
	// inspectBufs holds *bytes.Buffer to read inspects into: a storm of
	// container starts makes hundreds a second, of a few kilobytes each.
	inspectBufs sync.Pool
	// parsed shares parsed tierlb labels between records (records of
	// replicas of one service carry the same ones).
	parsed labelCache
	host   string // for messages
	onList func(error)

	// Hooks and tunables; tests replace them before Run.
	getenv     func(string) string
	readFile   func(string) ([]byte, error)
	coalesce   time.Duration // how long a burst of events may gather
	backoffMin time.Duration
	backoffMax time.Duration

	// Owned by Run's goroutine.
	me        *self
	ctrs      map[string]*ctr // running containers seen, by full ID
	bridges   map[string]bool // bridge network IDs and names (on the host)
	published map[string][]backends.Spec
	declared  []LabelService
	declGen   int // counts changes of declared
	// declNew and declWarnings are declareServices' last result, computed
	// with the selectors of generation declSels.
	declNew      []LabelService
	declWarnings map[string][]string
	declSels     int
	// configured and declaredBy index the selectors of generation
	// configuredGen and the declarations of generation declGen by service
	// name, made again only when those change rather than per publish.
	configured    map[string]bool
	configuredGen int
	declaredBy    map[string]LabelService
	routes        routes // its byRef is written under mu: Explain reads it
	synced        bool   // published at least once
	sw            swarmState
	// lastEvent is the engine's time of the last event applied (UnixNano).
	// A new subscription asks for the events since then, so a container
	// stopped while the stream was down is still drained at its stop.
	lastEvent int64

	reload chan struct{} // SetServices asks Run to relist

	mu       sync.Mutex // guards the fields below
	sels     []ServiceSelector
	selsGen  int // counts SetServices calls
	ready    bool
	notReady string
	// health maps a Swarm task's container ID to its Docker health status;
	// a plain container's is its route's (routes are keyed by container ID).
	health map[string]string
}

// New makes a provider; nothing talks to the engine until Run.
func New(cfg Config, services []ServiceSelector, sink Sink, opts Options) (*Provider, error) {
	if sink == nil {
		return nil, errors.New("docker provider: nil sink")
	}
	for _, s := range services {
		if s.Name == "" {
			return nil, errors.New("docker provider: service selector without a name")
		}
	}
	p := &Provider{
		cfg:        cfg,
		sink:       sink,
		log:        opts.Logger,
		metrics:    opts.Metrics,
		cli:        opts.Client,
		onList:     opts.OnList,
		getenv:     os.Getenv,
		readFile:   os.ReadFile,
		coalesce:   5 * time.Millisecond,
		backoffMin: 250 * time.Millisecond,
		backoffMax: 30 * time.Second,
		ctrs:       map[string]*ctr{},
		bridges:    map[string]bool{},
		reload:     make(chan struct{}, 1),
		sels:       cloneSelectors(services),
		notReady:   "waiting for the first docker sync",
	}
	if p.log == nil {
		p.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	p.log = p.log.With("provider", "docker")
	if p.cli == nil {
		opts := []client.Opt{client.FromEnv}
		if cfg.Host != "" {
			opts = append(opts, client.WithHost(cfg.Host))
		}
		cli, err := client.New(opts...)
		if err != nil {
			return nil, fmt.Errorf("docker client for %q: %w", cfg.Host, err)
		}
		p.cli = cli
	}
	p.host = p.cli.DaemonHost()
	p.raw = newGetter(p.cli)
	return p, nil
}

// Ready reports whether the first full sync is done, and if not, why.
// It stays true once synced: the last known backends keep serving while
// the provider reconnects.
func (p *Provider) Ready() (bool, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ready {
		return true, ""
	}
	return false, p.notReady
}

// Explain returns every container seen, routed or not, and why; one entry
// per container and service, sorted by container name.
func (p *Provider) Explain() []Explanation {
	p.mu.Lock()
	list := slices.Collect(maps.Values(p.routes.byRef))
	p.mu.Unlock()
	return explanations(list)
}

// SetServices replaces the configured service selectors (config reload);
// Run relists and republishes at once.
func (p *Provider) SetServices(services []ServiceSelector) {
	p.mu.Lock()
	p.sels = cloneSelectors(services)
	p.selsGen++
	p.mu.Unlock()
	select {
	case p.reload <- struct{}{}:
	default: // a relist is already pending
	}
}

func (p *Provider) selectors() []ServiceSelector {
	sels, _ := p.selectorsGen()
	return sels
}

// selectorsGen returns the selectors and how many times they were set, so
// that a publish knows whether its cached routes still apply.
func (p *Provider) selectorsGen() ([]ServiceSelector, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sels, p.selsGen
}

// ContainerHealth returns a container's Docker health status ("healthy",
// "unhealthy", "starting", or "none" without a HEALTHCHECK). It answers from
// what events and inspects already told the provider, and asks the engine
// only about containers it has not seen, so a health checker may call it on
// every interval. It has the shape of health.ContainerHealth.
func (p *Provider) ContainerHealth(ctx context.Context, containerID string) (string, error) {
	p.mu.Lock()
	st, ok := p.health[containerID]
	if rt := p.routes.byRef[containerID]; !ok && rt != nil {
		st, ok = rt.health, true
	}
	p.mu.Unlock()
	if ok {
		return st, nil
	}
	r, err := p.inspectContainer(ctx, containerID)
	if err != nil {
		return "", fmt.Errorf("inspect container %s for its health: %w", containerID, err)
	}
	if h := r.health(); h != "" {
		return h, nil
	}
	return "none", nil
}

func (p *Provider) setReady(ok bool, why string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ok {
		p.ready = true
		return
	}
	p.notReady = why
}
