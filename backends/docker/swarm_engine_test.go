package docker

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/tierlb/tierlb/internal/testkit"
)

// swarmTierlbConfig balances service web over the tasks of Swarm services
// labelled tierlb.service=web; only discovery decides (no active check).
const swarmTierlbConfig = `admin: {listen: 0.0.0.0:9090}
log: {level: debug}
docker: {enabled: "true", swarm: "true", swarm_poll: 1s}
services:
  - name: web
    listen: 0.0.0.0:8080
    retries: 2
    timeouts: {connect: 500ms}
    backends: {docker: {service: web, port: 8080}}
    health: {type: none}
`

// TestSwarmEngine runs tierlb on the manager of a real Swarm of
// TIERLB_SWARM_NODES nodes (3 by default; CI runs 1, see the README) made
// of node containers, in front of services spread over every node. The
// steps share the cluster and run in order: the last one stops a node.
func TestSwarmEngine(t *testing.T) {
	nodes := 3
	if v := os.Getenv("TIERLB_SWARM_NODES"); v != "" {
		if _, err := fmt.Sscan(v, &nodes); err != nil || nodes < 1 || nodes > 5 {
			t.Fatalf("TIERLB_SWARM_NODES=%q: want 1 to 5", v)
		}
	}
	host := engine(t)
	whoami := testImage(t, host)
	tierlbImage := buildImage(t, host, e2eBinary(t), "tierlb", "FROM scratch\nCOPY tierlb /tierlb\nENTRYPOINT [\"/tierlb\"]\n")
	start := time.Now()
	c := newSwarmCluster(t, nodes, whoami, tierlbImage)
	c.docker(1, "network", "create", "-d", "overlay", "--attachable", "--subnet", "10.215.1.0/24", "front")
	c.docker(1, "network", "create", "-d", "overlay", "--attachable", "--subnet", "10.215.2.0/24", "back")
	lb := c.runTierlb(tierlbImage, swarmTierlbConfig, "front")
	t.Logf("cluster, networks and tierlb ready in %s", time.Since(start).Round(100*time.Millisecond))

	replicas := 3
	c.docker(1, "service", "create", "-d", "--name", "web", "--replicas", fmt.Sprint(replicas),
		"--endpoint-mode", "dnsrr", "--network", "front", "--stop-grace-period", "5s", "--env", "NAME={{.Task.Name}}",
		"--label", "tierlb.service=web", "--label", "tierlb.port=8080", whoami)

	step := func(name string, f func(t *testing.T)) {
		if t.Failed() {
			return
		}
		s := time.Now()
		t.Run(name, f)
		t.Logf("%s: %s", name, time.Since(s).Round(100*time.Millisecond))
	}

	step("round robin over tasks on every node", func(t *testing.T) {
		testkit.Eventually(t, 60*time.Second, "3 tasks up in tierlb", func() bool { n, _ := lb.upOn("web"); return n == replicas })
		_, on := lb.upOn("web")
		if len(on) != min(nodes, replicas) {
			t.Errorf("tasks up by node = %v, want them spread over %d nodes", on, min(nodes, replicas))
		}
		// Running means started, not listening yet: with no health check
		// tierlb retries a refused dial elsewhere, which breaks the rotation.
		testkit.Eventually(t, 20*time.Second, "every task answering", func() bool {
			got, err := askN(lb.front, 2*replicas)
			return err == nil && distinct(got) == replicas
		})
		got, err := askN(lb.front, 30)
		if err != nil {
			t.Fatal(err)
		}
		for i := replicas; i < len(got); i++ {
			if got[i] != got[i-replicas] {
				t.Fatalf("not an exact rotation over %d tasks: %v", replicas, got)
			}
		}
		if distinct(got) != replicas {
			t.Fatalf("%d distinct tasks answered, want %d: %v", distinct(got), replicas, got)
		}
	})

	step("scale up and down", func(t *testing.T) {
		c.docker(1, "service", "scale", "-d", "web=5")
		testkit.Eventually(t, 60*time.Second, "5 tasks up", func() bool { n, _ := lb.upOn("web"); return n == 5 })
		var got []string
		// As above: a new task is up once running, and may listen later
		// (a CI run saw one take more than 10s on a fresh node).
		testkit.Eventually(t, 20*time.Second, "5 tasks answering", func() bool {
			var err error
			got, err = askN(lb.front, 10)
			return err == nil && distinct(got) == 5
		})
		c.docker(1, "service", "scale", "-d", "web=2")
		testkit.Eventually(t, 60*time.Second, "2 backends left", func() bool { return len(lb.backendsOf("web")) == 2 })
		got, err := askN(lb.front, 10)
		if err != nil || distinct(got) != 2 {
			t.Fatalf("after scaling down to 2: %v, %v", got, err)
		}
	})

	step("rolling update under load loses no connection", func(t *testing.T) {
		c.docker(1, "service", "scale", "-d", "web=6")
		testkit.Eventually(t, 60*time.Second, "6 tasks up", func() bool { n, _ := lb.upOn("web"); return n == 6 })
		load := startLoad(t, lb.front, 4, 3*time.Minute)
		began := time.Now()
		c.docker(1, "service", "update", "--force", "--update-parallelism", "1", "web") // waits for convergence
		load.Stop()
		ok, failed := load.Counts()
		took := time.Since(began)
		t.Logf("rolling update of 6 replicas: %d connections in %s (%.0f/s), %d failed", ok+failed, took.Round(100*time.Millisecond), float64(ok+failed)/took.Seconds(), failed)
		if failed > 0 || ok == 0 {
			t.Fatalf("%d of %d connections failed during the update; last: %s", failed, ok+failed, load.LastErrors())
		}
		testkit.Eventually(t, 30*time.Second, "6 new tasks up", func() bool { n, _ := lb.upOn("web"); return n == 6 && len(lb.backendsOf("web")) == 6 })
	})

	step("a task on an overlay tierlb does not share is explained", func(t *testing.T) {
		c.docker(1, "service", "create", "-d", "--name", "hidden", "--replicas", "1", "--endpoint-mode", "dnsrr",
			"--network", "back", "--label", "tierlb.service=web", "--label", "tierlb.port=8080", whoami)
		const want = "the proxy is not on network back (proxy networks: front)"
		testkit.Eventually(t, 60*time.Second, "hidden's task explained", func() bool {
			for _, e := range lb.explained() {
				if strings.HasPrefix(fmt.Sprint(e["name"]), "hidden.1.") && e["routed"] == false &&
					strings.Contains(fmt.Sprint(e["reason"]), want) && e["node"] != nil && e["task"] != nil {
					return true
				}
			}
			return false
		})
		c.docker(1, "service", "rm", "hidden")
	})

	step("event stream cut: polling carries on", func(t *testing.T) {
		sp := newSockProxy(t, strings.TrimPrefix(c.hosts[0], "unix://"))
		viaProxy, err := client.New(client.WithHost(sp.host()), client.WithAPIVersionNegotiation())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { viaProxy.Close() })
		sink := newFakeSink()
		p, err := New(Config{ContainerID: lb.id, Swarm: "true", SwarmPoll: time.Second, ResyncInterval: time.Hour},
			[]ServiceSelector{{Name: "web", Port: 8080}}, sink,
			Options{Client: eventsVia{APIClient: c.cli[0], events: viaProxy}, Logger: discardLogger()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		testkit.Eventually(t, 20*time.Second, "6 tasks in the in-process provider", func() bool { return len(sink.get("web")) == 6 })

		sp.setRefuse(true)
		sp.cut()
		c.docker(1, "service", "scale", "-d", "web=7")
		testkit.Eventually(t, 60*time.Second, "the 7th task found by polling alone", func() bool { return len(sink.get("web")) == 7 })
		if ok, _ := p.Ready(); !ok {
			t.Error("not ready while polling")
		}
		sp.setRefuse(false)
		c.docker(1, "service", "scale", "-d", "web=6")
		testkit.Eventually(t, 60*time.Second, "back to 6", func() bool { return len(sink.get("web")) == 6 })
	})

	if nodes < 3 {
		return // draining or stopping a node needs others to take its tasks
	}

	step("node drained", func(t *testing.T) {
		load := startLoad(t, lb.front, 2, 2*time.Minute)
		c.docker(1, "node", "update", "--availability", "drain", "node3")
		testkit.Eventually(t, 60*time.Second, "no backend on node3, 6 up elsewhere", func() bool {
			n, on := lb.upOn("web")
			return n == 6 && on["node3"] == 0 && len(lb.backendsOf("web")) == 6
		})
		load.Stop()
		ok, failed := load.Counts()
		t.Logf("node drain: %d connections, %d failed", ok+failed, failed)
		if failed > 0 {
			t.Errorf("%d connections failed while node3 drained; last: %s", failed, load.LastErrors())
		}
		c.docker(1, "node", "update", "--availability", "active", "node3")
	})

	step("node container stopped outright", func(t *testing.T) {
		c.docker(1, "service", "update", "-d", "--force", "web") // spread tasks back onto node3
		testkit.Eventually(t, 90*time.Second, "tasks on node2 again", func() bool {
			n, on := lb.upOn("web")
			return n == 6 && on["node2"] > 0 && len(lb.backendsOf("web")) == 6
		})
		stopped := time.Now()
		if _, err := host.ContainerKill(t.Context(), "tierlb-swarm-"+c.name+"-node2", client.ContainerKillOptions{Signal: "SIGKILL"}); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 60*time.Second, "node2's tasks out", func() bool {
			_, on := lb.upOn("web")
			return on["node2"] == 0
		})
		t.Logf("node2 killed: its tasks out of rotation after %s", time.Since(stopped).Round(100*time.Millisecond))
		testkit.Eventually(t, 90*time.Second, "6 tasks up on the others", func() bool { n, _ := lb.upOn("web"); return n == 6 })
		got, err := askN(lb.front, 12)
		if err != nil {
			t.Fatalf("after node2 went: %v, %v", got, err)
		}
	})
}

// eventsVia is an engine client whose event stream goes another way (a
// proxy that a test cuts) while every other call goes straight.
type eventsVia struct {
	client.APIClient
	events client.APIClient
}

func (e eventsVia) Events(ctx context.Context, o client.EventsListOptions) client.EventsResult {
	return e.events.Events(ctx, o)
}

func distinct(names []string) int {
	seen := map[string]bool{}
	for _, n := range names {
		seen[n] = true
	}
	return len(seen)
}

// startLoad runs workers opening new connections through tierlb, one
// request each, for at most max, at testkit's sustained rate: a rolling
// update lasts longer than the local ports' TIME_WAIT, and a fast machine
// unpaced runs its own client out of ports (EADDRNOTAVAIL).
func startLoad(t *testing.T, front string, workers int, max time.Duration) *testkit.Load {
	pace := testkit.Pace{Rate: testkit.SustainedRate, Count: int64(max.Seconds()) * testkit.SustainedRate, Within: max}
	return testkit.StartLoad(t, workers, pace, func(context.Context) error {
		_, err := ask(front)
		return err
	})
}
