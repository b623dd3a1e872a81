// Package scale measures tierlb's Docker discovery at scale against a fake
// engine (internal/fakeengine): it starts the real binary on K containers
// over S services, times how long every backend takes to be routed, checks
// real connections through a sample of services, plays an event storm and
// times each change it causes, and reads tierlb's RSS, CPU and the Engine
// API requests it made. In Swarm mode (Params.Swarm, see swarm.go) the
// backends are Swarm tasks and a churn of Swarm operations replaces the
// storm. The scale tests and `go run ./bench/scale` drive it.
//
//	f, err := scale.Run(ctx, scale.Params{Binary: bin, Containers: 10000, Services: 100,
//		StormRate: 1000, StormFor: 10 * time.Second})
//
// tierlb believes it runs in a container on the fake network (its
// TIERLB_CONTAINER_ID names a container of the fake engine), so discovery
// takes the path it takes in production: its own container's networks
// decide which replicas it can reach.
package scale

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tierlb/tierlb/internal/fakeengine"
)

// Params describe one run.
type Params struct {
	// Binary is the tierlb binary to run.
	Binary string
	// Containers running at tierlb's start, spread evenly over Services
	// (svc0, svc1, ...); Stopped more exist, stopped, for the storm's
	// starts.
	Containers, Services, Stopped int
	// Health is the services' health type: "none" (the default) or "tcp".
	Health string
	// StormRate is the container events per second of the storm, played
	// for StormFor; 0 plays none.
	StormRate int
	StormFor  time.Duration
	// StepGap is the time between the steps of one operation (kill, then
	// die 300ms later, then start 300ms later); a change not applied
	// before its operation's next step is lost in it and counted missed.
	StepGap time.Duration
	// RestFor is how long requests are counted at rest after the storm
	// (0: not at all). The default resync_interval is 30s: a window that
	// ends past it shows what one resync costs.
	RestFor time.Duration
	// CPUFor is how long tierlb's CPU is read at rest, last (0: not at
	// all): with Health "tcp", the cost of the checks.
	CPUFor time.Duration
	// Samples is how many services get real connections through tierlb
	// once everything is routed (3 each).
	Samples int
	// RoutedWithin bounds the wait for every backend to be routed.
	RoutedWithin time.Duration
	// Profile, if set, is a file that receives tierlb's CPU profile of the
	// storm (admin.pprof is turned on for it).
	Profile string
	// HeapProfile, if set, is a file that receives tierlb's heap profile
	// once routed (admin.pprof is turned on for it).
	HeapProfile string
	// Swarm runs the tasks of Swarm services instead of containers (see
	// swarm.go): Containers tasks over Services services on Nodes nodes,
	// tierlb polling them every SwarmPoll (its default, 1s, when 0).
	// ChurnRate Swarm operations per second are played for ChurnFor.
	Swarm     bool
	Nodes     int
	SwarmPoll time.Duration
	ChurnRate int
	ChurnFor  time.Duration
	// Progress, if set, receives a line at each stage.
	Progress func(string)
}

// Figures are what a run measured.
type Figures struct {
	Containers, Services int
	// Routed is the time from exec to the log line that completes every
	// service's backends; RoutedCPU is tierlb's CPU time (user and
	// system) up to then, which a loaded machine does not inflate.
	Routed, RoutedCPU time.Duration
	// RSS is tierlb's resident set once routed (bytes), read as a user
	// would after an API read and two scrapes: see settledRSS.
	RSS int64
	// HeapInuse is the Go heap in use once routed (from /metrics, read
	// after the RSS): what the RSS holds beyond it is the runtime's
	// headroom and memory not yet returned to the system.
	HeapInuse int64
	// StartRequests are the Engine API requests up to Routed.
	StartRequests map[string]int
	StartBytes    map[string]int64 // response bytes by endpoint up to Routed
	Storm         *Storm
	// Churn is the Swarm operations' (Swarm mode).
	Churn *Storm
	// RestBytes are the response bytes during RestFor.
	RestBytes map[string]int64
	// RestRequests are the requests during RestFor, without events.
	RestRequests map[string]int
	RestFor      time.Duration
	// RestCPU is tierlb's CPU over RestCPUFor, at rest.
	RestCPU, RestCPUFor time.Duration
	// Warnings are tierlb's warning and error log lines.
	Warnings []string
}

// Storm is what an event storm measured.
type Storm struct {
	Events   int           // container events emitted (Swarm: service and node events)
	Ops      int           // Swarm operations played
	For      time.Duration // from the first event to the last
	Changes  int           // routing changes expected (kill, die, start)
	Lags     []time.Duration
	Missed   []string // changes tierlb never logged
	CPU      time.Duration
	Requests map[string]int
	Dropped  int64 // events the engine dropped because tierlb read too slowly
	// ByKind are the lags by change: added, draining, removed (sorted).
	ByKind map[string][]time.Duration
}

// KindQuantile is Quantile over one kind of change.
func (s *Storm) KindQuantile(kind string, q float64) time.Duration {
	l := s.ByKind[kind]
	if len(l) == 0 {
		return 0
	}
	return l[min(len(l)-1, int(q*float64(len(l))))]
}

// Quantile returns the q-quantile of the lags (0 when there are none).
func (s *Storm) Quantile(q float64) time.Duration {
	if len(s.Lags) == 0 {
		return 0
	}
	return s.Lags[min(len(s.Lags)-1, int(q*float64(len(s.Lags))))]
}

// Over counts the lags above d.
func (s *Storm) Over(d time.Duration) int {
	n := 0
	for _, l := range s.Lags {
		if l > d {
			n++
		}
	}
	return n
}

const labelPrefix = "tierlb"

type harness struct {
	p       Params
	dir     string
	engine  *fakeengine.Engine
	loop    *fakeengine.Loopback
	running []string // IDs running at start
	stopped []string
	byIP    map[string]string // container IP → service
	want    map[string]int    // Swarm: tasks per service at start
	lags    *lags
}

func (h *harness) labels(svc int) map[string]string {
	return map[string]string{
		labelPrefix + ".service": fmt.Sprintf("svc%d", svc),
		labelPrefix + ".port":    fmt.Sprint(h.loop.Port()),
	}
}

func (h *harness) progress(format string, args ...any) {
	if h.p.Progress != nil {
		h.p.Progress(fmt.Sprintf(format, args...))
	}
}

// Run performs one run; see the package doc.
func Run(ctx context.Context, p Params) (*Figures, error) {
	if p.Services <= 0 || p.Containers < 0 {
		return nil, errors.New("scale: Services must be positive and Containers not negative")
	}
	if p.Health == "" {
		p.Health = "none"
	}
	if p.RoutedWithin <= 0 {
		p.RoutedWithin = time.Minute
	}
	dir, err := os.MkdirTemp("", "tierlb-scale-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	h := &harness{p: p, dir: dir, byIP: map[string]string{}}
	var f *Figures
	g.Go(func() error {
		defer cancel() // the servers below stop with the measurement
		var err error
		f, err = h.measure(gctx, g)
		return err
	})
	err = g.Wait()
	if err != nil && errors.Is(err, context.Canceled) && ctx.Err() != nil && f != nil {
		err = nil
	}
	return f, err
}

// measure sets the engine up, runs tierlb and takes every figure; g runs
// the servers.
func (h *harness) measure(ctx context.Context, g *errgroup.Group) (*Figures, error) {
	p := h.p
	loop, err := fakeengine.ListenLoopback(0)
	if err != nil {
		return nil, err
	}
	h.loop = loop
	g.Go(func() error { return loop.Serve(ctx) })
	h.engine = fakeengine.New(fakeengine.Options{Port: loop.Port(), Swarm: p.Swarm, Nodes: p.Nodes})
	host, err := h.engine.Listen(filepath.Join(h.dir, "docker.sock"))
	if err != nil {
		return nil, err
	}
	g.Go(func() error { return h.engine.Serve(ctx) })

	selfID, err := h.setup()
	if err != nil {
		return nil, err
	}

	cfg := filepath.Join(h.dir, "tierlb.yaml")
	if err := os.WriteFile(cfg, []byte(h.config(host)), 0o600); err != nil {
		return nil, err
	}
	lags := newLags()
	h.lags = lags
	if p.Swarm {
		h.engine.OnEmit(lags.countSwarmEvents)
	} else {
		h.engine.OnEmit(lags.emitted(labelPrefix + ".service"))
	}
	before, beforeBytes := h.engine.Requests(), h.engine.ResponseBytes()

	start := time.Now()
	proc, err := startTierlb(p.Binary, cfg, tierlbEnv(selfID))
	if err != nil {
		return nil, err
	}
	defer proc.stop()
	go lags.follow(ctx, proc.changes)

	f := &Figures{Containers: p.Containers, Services: p.Services}
	want := h.perService()
	err = proc.waitFor(p.RoutedWithin, "every backend routed", func() bool {
		for svc, n := range want {
			if got, ok := proc.counts[svc]; !ok || got != n {
				return false
			}
		}
		return len(proc.listen) == p.Services && proc.admin != ""
	})
	if err != nil {
		return nil, err
	}
	proc.mu.Lock()
	f.Routed = proc.lastUpdate.Sub(start)
	proc.mu.Unlock()
	if f.RoutedCPU, err = proc.cpu(); err != nil {
		return nil, err
	}
	f.StartRequests = diff(h.engine.Requests(), before)
	f.StartBytes = diff(h.engine.ResponseBytes(), beforeBytes)
	h.progress("routed %d backends in %s (%s of CPU)", p.Containers, f.Routed.Round(time.Millisecond), f.RoutedCPU)
	if err := h.check(proc); err != nil {
		return nil, err
	}
	if f.RSS, err = h.settledRSS(proc); err != nil {
		return nil, err
	}
	if p.HeapProfile != "" {
		if err := h.fetch(proc, "/debug/pprof/heap?gc=1", p.HeapProfile, time.Minute); err != nil {
			return nil, err
		}
	}
	if f.HeapInuse, err = h.heapInuse(proc); err != nil {
		return nil, err
	}

	if p.StormRate > 0 && p.StormFor > 0 && !p.Swarm {
		if f.Storm, err = h.storm(ctx, proc, lags); err != nil {
			return nil, err
		}
	}
	if p.Swarm && p.ChurnRate > 0 && p.ChurnFor > 0 {
		if f.Churn, err = h.churn(ctx, proc, lags); err != nil {
			return nil, err
		}
		if err := h.settled(proc); err != nil {
			return nil, err
		}
		time.Sleep(hotWindow + time.Second) // the churned services cool down: the rest window sees the regular polls alone
	}
	if p.RestFor > 0 {
		before, beforeBytes := h.engine.Requests(), h.engine.ResponseBytes()
		time.Sleep(p.RestFor)
		f.RestRequests, f.RestFor = diff(h.engine.Requests(), before), p.RestFor
		f.RestBytes = diff(h.engine.ResponseBytes(), beforeBytes)
	}
	if p.CPUFor > 0 {
		c0, err := proc.cpu()
		if err != nil {
			return nil, err
		}
		time.Sleep(p.CPUFor)
		c1, err := proc.cpu()
		if err != nil {
			return nil, err
		}
		f.RestCPU, f.RestCPUFor = c1-c0, p.CPUFor
	}
	f.Warnings = proc.warnings()
	return f, nil
}

// setup fills the engine: containers (running, then stopped), or Swarm
// services; it returns tierlb's own container's ID.
func (h *harness) setup() (string, error) {
	p := h.p
	if p.Swarm {
		return h.setupSwarm()
	}
	self, err := h.engine.Run("tierlb", nil)
	if err != nil {
		return "", err
	}
	for i := range p.Containers + p.Stopped {
		svc := i % p.Services
		c, err := h.engine.Run(fmt.Sprintf("svc%d-%d", svc, i/p.Services), h.labels(svc))
		if err != nil {
			return "", err
		}
		h.byIP[c.IP.String()] = fmt.Sprintf("svc%d", svc)
		if i < p.Containers {
			h.running = append(h.running, c.ID)
			continue
		}
		if err := h.engine.BeginStop(c.ID); err != nil {
			return "", err
		}
		if err := h.engine.FinishStop(c.ID); err != nil {
			return "", err
		}
		h.stopped = append(h.stopped, c.ID)
	}
	h.progress("fake engine: %d running containers over %d services, %d stopped", p.Containers, p.Services, p.Stopped)
	return self.ID, nil
}

// storm plays the storm and waits for its changes to settle.
func (h *harness) storm(ctx context.Context, proc *tierlb, lags *lags) (*Storm, error) {
	pl, err := h.planStorm(h.p.StormRate, h.p.StormFor)
	if err != nil {
		return nil, err
	}
	h.progress("storm: %d operations at %d container events/s for %s", pl.ops, h.p.StormRate, h.p.StormFor)
	dropped := h.engine.Dropped()
	// Every change is awaited, up to 5s: one still pending after that is
	// reported as missed.
	s, err := h.playMeasured(ctx, proc, lags, pl, h.p.StormFor, 5*time.Second, "storm")
	if err != nil {
		return nil, err
	}
	s.Dropped = h.engine.Dropped() - dropped
	h.progress("storm: %d events, %d changes, lag p50 %s p99 %s max %s, %d missed, CPU %s",
		s.Events, s.Changes, s.Quantile(0.5), s.Quantile(0.99), s.Quantile(1), len(s.Missed), s.CPU)
	return s, nil
}

// playMeasured plays pl (a storm or a churn, d long) with the lags recorded,
// waits up to wait for every change to reach tierlb, and returns what it
// cost: tierlb's CPU, the Engine API requests, each change's lag. With
// Params.Profile it profiles tierlb's CPU meanwhile.
func (h *harness) playMeasured(ctx context.Context, proc *tierlb, lags *lags, pl *plan, d, wait time.Duration, what string) (*Storm, error) {
	before := h.engine.Requests()
	cpu0, err := proc.cpu()
	if err != nil {
		return nil, err
	}
	profiled := make(chan error, 1)
	if h.p.Profile != "" {
		go func() { profiled <- h.profile(proc, d) }()
	} else {
		profiled <- nil
	}
	lags.setOn(true)
	t0 := time.Now()
	if err := pl.play(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	s := &Storm{For: time.Since(t0), Ops: pl.ops}
	lags.setOn(false)
	_ = proc.waitFor(wait, "every change applied", func() bool { return lags.pending() == 0 })
	cpu1, err := proc.cpu()
	if err != nil {
		return nil, err
	}
	s.CPU = cpu1 - cpu0
	if err := <-profiled; err != nil {
		return nil, err
	}
	s.Requests = diff(h.engine.Requests(), before)
	s.Lags, s.Missed = lags.result()
	s.ByKind = lags.byKind()
	s.Changes = len(s.Lags) + len(s.Missed)
	lags.mu.Lock()
	s.Events = lags.events
	lags.mu.Unlock()
	return s, nil
}

// profile writes tierlb's CPU profile over d to Params.Profile.
func (h *harness) profile(proc *tierlb, d time.Duration) error {
	secs := max(1, int(d.Seconds()))
	return h.fetch(proc, fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs), h.p.Profile, d+30*time.Second)
}

// fetch saves what an admin endpoint answers to a file.
func (h *harness) fetch(proc *tierlb, path, file string, within time.Duration) error {
	proc.mu.Lock()
	admin := proc.admin
	proc.mu.Unlock()
	cli := &http.Client{Timeout: within}
	res, err := cli.Get("http://" + admin + path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", path, res.Status)
	}
	out, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, res.Body); err != nil {
		out.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return out.Close()
}

// rssWindow is how long settledRSS samples the RSS, every rssEvery.
const (
	rssWindow = 3 * time.Second
	rssEvery  = 250 * time.Millisecond
)

// settledRSS is tierlb's RSS as a user who looks at it sees it: after one
// services API read (check, just before) and two /metrics scrapes, as
// Prometheus makes them, the highest of the samples taken over rssWindow.
// A single reading depends on where the garbage collector happens to be:
// one right after a collection reads several MB less than one just before.
func (h *harness) settledRSS(proc *tierlb) (int64, error) {
	for range 2 {
		if err := h.fetch(proc, "/metrics", filepath.Join(h.dir, "metrics.txt"), time.Minute); err != nil {
			return 0, err
		}
	}
	var most int64
	for end := time.Now().Add(rssWindow); time.Now().Before(end); time.Sleep(rssEvery) {
		rss, err := proc.rss()
		if err != nil {
			return 0, err
		}
		most = max(most, rss)
	}
	return most, nil
}

func (h *harness) perService() map[string]int {
	if h.p.Swarm {
		return maps.Clone(h.want)
	}
	want := map[string]int{}
	for i := range h.p.Services {
		want[fmt.Sprintf("svc%d", i)] = 0
	}
	for _, id := range h.running {
		c, _ := h.engine.Container(id)
		want[c.Labels[labelPrefix+".service"]]++
	}
	return want
}

func (h *harness) config(host string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "admin:\n  listen: 127.0.0.1:0\n  pprof: %t\nlog:\n  level: debug\n  format: json\n  access: false\n", h.p.Profile != "" || h.p.HeapProfile != "")
	fmt.Fprintf(&b, "docker:\n  enabled: \"true\"\n  host: %s\n", host)
	if h.p.Swarm {
		fmt.Fprintf(&b, "  swarm: \"true\"\n  swarm_poll: %s\n", h.swarmPoll())
	}
	b.WriteString("services:\n")
	for i := range h.p.Services {
		fmt.Fprintf(&b, "  - name: svc%d\n    listen: 127.0.0.1:0\n    backends:\n      docker:\n        service: svc%d\n", i, i)
		fmt.Fprintf(&b, "    health:\n      type: %s\n", h.p.Health)
	}
	return b.String()
}

// tierlbEnv is the harness's environment without Docker's and tierlb's
// own variables, plus the container ID tierlb runs as.
func tierlbEnv(self string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "DOCKER_") || strings.HasPrefix(kv, "TIERLB_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "TIERLB_CONTAINER_ID="+self)
}

// diff is after less before, key by key, without the keys that did not
// move.
func diff[V int | int64](after, before map[string]V) map[string]V {
	out := maps.Clone(after)
	for k, v := range before {
		out[k] -= v
		if out[k] == 0 {
			delete(out, k)
		}
	}
	return out
}
