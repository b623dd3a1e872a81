package docker

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/tierlb/tierlb/internal/testkit"
)

// TestSwarmFigures measures what the README reports for Swarm mode, on a
// 3-node cluster; it takes minutes, so it runs only with
// TIERLB_SWARM_FIGURES=1:
//   - task running → first connection tierlb routes to it, and desired
//     state change → last new connection to it (medians over 10, under load);
//   - the manager API requests per second that the provider makes, at rest
//     and during a rolling update, and the cost of one task poll with 100 tasks.
func TestSwarmFigures(t *testing.T) {
	if os.Getenv("TIERLB_SWARM_FIGURES") != "1" {
		t.Skip("set TIERLB_SWARM_FIGURES=1 to measure (minutes)")
	}
	host := engine(t)
	whoami := testImage(t, host)
	tierlbImage := buildImage(t, host, e2eBinary(t), "tierlb", "FROM scratch\nCOPY tierlb /tierlb\nENTRYPOINT [\"/tierlb\"]\n")
	c := newSwarmCluster(t, 3, whoami, tierlbImage)
	c.docker(1, "network", "create", "-d", "overlay", "--attachable", "--subnet", "10.215.1.0/22", "front")
	conf := strings.Replace(swarmTierlbConfig, "log: {level: debug}", "log: {level: info}", 1)
	lb := c.runTierlb(tierlbImage, conf, "front")
	c.docker(1, "service", "create", "-d", "--name", "web", "--replicas", "3", "--endpoint-mode", "dnsrr",
		"--network", "front", "--stop-grace-period", "5s", "--env", "NAME={{.Task.Name}}",
		"--label", "tierlb.service=web", "--label", "tierlb.port=8080", whoami)
	testkit.Eventually(t, 60*time.Second, "3 tasks up", func() bool { n, _ := lb.upOn("web"); return n == 3 })
	mgr := c.cli[0]

	// Lifecycle latencies, under a steady load of new connections.
	load := startLoad(t, lb.front, 2, 10*time.Minute)
	type sample struct {
		name            string
		running, change time.Time
	}
	var joins, leaves []sample
	for i := range 10 {
		before := taskSet(t, mgr)
		c.docker(1, "service", "scale", "-d", fmt.Sprintf("web=%d", 4))
		var added swarm.Task
		testkit.Eventually(t, 60*time.Second, "the new task running", func() bool {
			for _, tk := range tasksOf(t, mgr) {
				if !before[tk.ID] && tk.Status.State == swarm.TaskStateRunning {
					added = tk
					return true
				}
			}
			return false
		})
		name := taskName("web", &taskRow{ID: added.ID, Slot: added.Slot, NodeID: added.NodeID})
		testkit.Eventually(t, 30*time.Second, "4 backends", func() bool { return len(lb.backendsOf("web")) == 4 })
		// The access log read at the end must hold a connection to it.
		testkit.Eventually(t, 30*time.Second, "a connection routed to "+name, func() bool {
			return slices.ContainsFunc(lb.backendsOf("web"), func(b swarmBackend) bool { return b.ID == name && b.Total > 0 })
		})
		joins = append(joins, sample{name: name, running: added.Status.Timestamp})

		// Scale back down: poll the manager to see which task's desired
		// state changes, and when (the task's UpdatedAt at that moment).
		c.docker(1, "service", "scale", "-d", "web=3")
		var gone sample
		testkit.Eventually(t, 30*time.Second, "a task's desired state to leave running", func() bool {
			for _, tk := range tasksOf(t, mgr) {
				if tk.DesiredState != swarm.TaskStateRunning && tk.Status.State == swarm.TaskStateRunning {
					gone = sample{name: taskName("web", &taskRow{ID: tk.ID, Slot: tk.Slot, NodeID: tk.NodeID}), change: tk.UpdatedAt}
					return true
				}
			}
			return false
		})
		leaves = append(leaves, gone)
		testkit.Eventually(t, 30*time.Second, "3 backends", func() bool { return len(lb.backendsOf("web")) == 3 })
		t.Logf("round %d: joined %s, left %s", i+1, name, gone.name)
	}
	load.Stop()
	ok, failed := load.Counts()
	logs, err := c.dockerErr(1, "logs", lb.id)
	if err != nil {
		t.Fatal(err)
	}
	var toFirst, toLast []time.Duration
	for _, s := range joins {
		starts := connStarts(logs, s.name)
		if len(starts) == 0 {
			t.Errorf("no connection logged for %s", s.name)
			continue
		}
		toFirst = append(toFirst, slices.MinFunc(starts, time.Time.Compare).Sub(s.running))
	}
	for _, s := range leaves {
		starts := connStarts(logs, s.name)
		if len(starts) == 0 {
			continue
		}
		toLast = append(toLast, slices.MaxFunc(starts, time.Time.Compare).Sub(s.change))
	}
	t.Logf("load: %d connections, %d failed", ok+failed, failed)
	t.Logf("task running -> first routed connection: median %s of %v", median(toFirst), toFirst)
	t.Logf("desired state change -> last new connection: median %s of %v", median(toLast), toLast)

	// Manager API requests per second made by one provider.
	cc := &countingSwarmClient{APIClient: mgr, http: newHTTPGetter(mgr), calls: map[string]int{}}
	sink := newFakeSink()
	p, err := New(Config{ContainerID: lb.id, Swarm: "true", SwarmPoll: time.Second}, []ServiceSelector{{Name: "web", Port: 8080}},
		sink, Options{Client: cc, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	testkit.Eventually(t, 30*time.Second, "the provider's first sync", func() bool { return len(sink.get("web")) == 3 })
	// The rates below are of a provider at rest, so wait out the hot polling
	// the start-up events began. It ends by the clock (hotWindow) and nothing
	// outside the provider shows it, so this is a sleep, not a condition.
	time.Sleep(10 * time.Second)
	rate := func(d time.Duration) (float64, map[string]int) {
		cc.reset()
		time.Sleep(d) // the window the rate is measured over
		calls := cc.snapshot()
		n := 0
		for _, v := range calls {
			n += v
		}
		return float64(n) / d.Seconds(), calls
	}
	r, calls := rate(20 * time.Second)
	t.Logf("manager API at rest, 3 tasks: %.2f requests/s %v", r, calls)

	c.docker(1, "service", "scale", "web=6")
	time.Sleep(hotWindow + time.Second) // the scale's hot polling ends by the clock
	cc.reset()
	start := time.Now()
	upd := startLoad(t, lb.front, 2, 5*time.Minute)
	c.docker(1, "service", "update", "--force", "--update-parallelism", "1", "web")
	upd.Stop()
	ok, failed = upd.Counts()
	d := time.Since(start)
	calls = cc.snapshot()
	n := 0
	for _, v := range calls {
		n += v
	}
	t.Logf("manager API during a rolling update of 6 (%s): %.2f requests/s %v", d.Round(100*time.Millisecond), float64(n)/d.Seconds(), calls)
	t.Logf("rolling update of 6 through tierlb: %d connections, %d failed", ok+failed, failed)

	// 100 tasks: what one poll costs the manager. A task counts from the
	// moment Swarm wants it running, so the list has 100 entries long
	// before this busy machine has started them all.
	c.docker(1, "service", "scale", "-d", "web=100")
	f := make(client.Filters).Add("desired-state", "running").Add("service", "web")
	testkit.Eventually(t, 2*time.Minute, "100 tasks desired running", func() bool {
		res, err := mgr.TaskList(t.Context(), client.TaskListOptions{Filters: f})
		return err == nil && len(res.Items) == 100
	})
	time.Sleep(hotWindow + time.Second) // the scale's hot polling ends by the clock
	r, calls = rate(20 * time.Second)
	t.Logf("manager API at rest, 100 tasks: %.2f requests/s %v", r, calls)
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", strings.TrimPrefix(c.hosts[0], "unix://"))
	}}}
	var durs []time.Duration
	size := 0
	for range 20 {
		s := time.Now()
		resp, err := hc.Get(`http://manager/v1.41/tasks?filters={"desired-state":{"running":true},"service":{"web":true}}`)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		durs = append(durs, time.Since(s))
		size = len(body)
	}
	t.Logf("one filtered task list of 100 tasks: median %s, %d bytes", median(durs), size)
}

func taskSet(t *testing.T, cli *client.Client) map[string]bool {
	out := map[string]bool{}
	for _, tk := range tasksOf(t, cli) {
		out[tk.ID] = true
	}
	return out
}

func tasksOf(t *testing.T, cli *client.Client) []swarm.Task {
	t.Helper()
	res, err := cli.TaskList(t.Context(), client.TaskListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return res.Items
}

// countingSwarmClient counts every engine call the provider makes: each
// is one HTTP request to the manager.
type countingSwarmClient struct {
	client.APIClient
	http  getter // the provider reads lists and inspects with its own requests
	mu    sync.Mutex
	calls map[string]int
}

func (c *countingSwarmClient) GetBody(ctx context.Context, path string, f client.Filters) (io.ReadCloser, error) {
	what, ok := map[string]string{"/tasks": "task_list", "/containers/json": "container_list"}[path]
	if !ok && strings.HasPrefix(path, "/containers/") {
		what = "container_inspect"
	}
	c.count(what)
	return c.http.GetBody(ctx, path, f)
}

func (c *countingSwarmClient) count(what string) {
	c.mu.Lock()
	c.calls[what]++
	c.mu.Unlock()
}

func (c *countingSwarmClient) reset() {
	c.mu.Lock()
	c.calls = map[string]int{}
	c.mu.Unlock()
}

func (c *countingSwarmClient) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.calls {
		out[k] = v
	}
	return out
}

func (c *countingSwarmClient) TaskInspect(ctx context.Context, id string, o client.TaskInspectOptions) (client.TaskInspectResult, error) {
	c.count("task_inspect")
	return c.APIClient.TaskInspect(ctx, id, o)
}

func (c *countingSwarmClient) ServiceList(ctx context.Context, o client.ServiceListOptions) (client.ServiceListResult, error) {
	c.count("service_list")
	return c.APIClient.ServiceList(ctx, o)
}

func (c *countingSwarmClient) NodeList(ctx context.Context, o client.NodeListOptions) (client.NodeListResult, error) {
	c.count("node_list")
	return c.APIClient.NodeList(ctx, o)
}

func (c *countingSwarmClient) Info(ctx context.Context, o client.InfoOptions) (client.SystemInfoResult, error) {
	c.count("info")
	return c.APIClient.Info(ctx, o)
}

func (c *countingSwarmClient) NetworkList(ctx context.Context, o client.NetworkListOptions) (client.NetworkListResult, error) {
	c.count("network_list")
	return c.APIClient.NetworkList(ctx, o)
}
