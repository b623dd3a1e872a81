package docker

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/client"
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
		waitFor(t, 60*time.Second, "3 tasks up in tierlb", func() bool { n, _ := lb.upOn("web"); return n == replicas })
		_, on := lb.upOn("web")
		if len(on) != min(nodes, replicas) {
			t.Errorf("tasks up by node = %v, want them spread over %d nodes", on, min(nodes, replicas))
		}
		// Running means started, not listening yet: with no health check
		// tierlb retries a refused dial elsewhere, which breaks the rotation.
		waitFor(t, 20*time.Second, "every task answering", func() bool {
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
		waitFor(t, 60*time.Second, "5 tasks up", func() bool { n, _ := lb.upOn("web"); return n == 5 })
		var got []string
		waitFor(t, 10*time.Second, "5 tasks answering", func() bool {
			var err error
			got, err = askN(lb.front, 10)
			return err == nil && distinct(got) == 5
		})
		c.docker(1, "service", "scale", "-d", "web=2")
		waitFor(t, 60*time.Second, "2 backends left", func() bool { return len(lb.backendsOf("web")) == 2 })
		got, err := askN(lb.front, 10)
		if err != nil || distinct(got) != 2 {
			t.Fatalf("after scaling down to 2: %v, %v", got, err)
		}
	})

	step("rolling update under load loses no connection", func(t *testing.T) {
		c.docker(1, "service", "scale", "-d", "web=6")
		waitFor(t, 60*time.Second, "6 tasks up", func() bool { n, _ := lb.upOn("web"); return n == 6 })
		load := startLoad(lb.front, 4, 3*time.Minute)
		c.docker(1, "service", "update", "--force", "--update-parallelism", "1", "web") // waits for convergence
		ok, failed := load.stop()
		t.Logf("rolling update of 6 replicas: %d connections, %d failed", ok+len(failed), len(failed))
		if len(failed) > 0 || ok == 0 {
			t.Fatalf("%d of %d connections failed during the update; first: %v", len(failed), ok+len(failed), failed[:min(5, len(failed))])
		}
		waitFor(t, 30*time.Second, "6 new tasks up", func() bool { n, _ := lb.upOn("web"); return n == 6 && len(lb.backendsOf("web")) == 6 })
	})

	step("a task on an overlay tierlb does not share is explained", func(t *testing.T) {
		c.docker(1, "service", "create", "-d", "--name", "hidden", "--replicas", "1", "--endpoint-mode", "dnsrr",
			"--network", "back", "--label", "tierlb.service=web", "--label", "tierlb.port=8080", whoami)
		const want = "the proxy is not on network back (proxy networks: front)"
		waitFor(t, 60*time.Second, "hidden's task explained", func() bool {
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
		waitFor(t, 20*time.Second, "6 tasks in the in-process provider", func() bool { return len(sink.get("web")) == 6 })

		sp.setRefuse(true)
		sp.cut()
		c.docker(1, "service", "scale", "-d", "web=7")
		waitFor(t, 60*time.Second, "the 7th task found by polling alone", func() bool { return len(sink.get("web")) == 7 })
		if ok, _ := p.Ready(); !ok {
			t.Error("not ready while polling")
		}
		sp.setRefuse(false)
		c.docker(1, "service", "scale", "-d", "web=6")
		waitFor(t, 60*time.Second, "back to 6", func() bool { return len(sink.get("web")) == 6 })
	})

	if nodes < 3 {
		return // draining or stopping a node needs others to take its tasks
	}

	step("node drained", func(t *testing.T) {
		load := startLoad(lb.front, 2, 2*time.Minute)
		c.docker(1, "node", "update", "--availability", "drain", "node3")
		waitFor(t, 60*time.Second, "no backend on node3, 6 up elsewhere", func() bool {
			n, on := lb.upOn("web")
			return n == 6 && on["node3"] == 0 && len(lb.backendsOf("web")) == 6
		})
		ok, failed := load.stop()
		t.Logf("node drain: %d connections, %d failed", ok+len(failed), len(failed))
		if len(failed) > 0 {
			t.Errorf("%d connections failed while node3 drained; first: %v", len(failed), failed[:min(5, len(failed))])
		}
		c.docker(1, "node", "update", "--availability", "active", "node3")
	})

	step("node container stopped outright", func(t *testing.T) {
		c.docker(1, "service", "update", "-d", "--force", "web") // spread tasks back onto node3
		waitFor(t, 90*time.Second, "tasks on node2 again", func() bool {
			n, on := lb.upOn("web")
			return n == 6 && on["node2"] > 0 && len(lb.backendsOf("web")) == 6
		})
		stopped := time.Now()
		if _, err := host.ContainerKill(t.Context(), "tierlb-swarm-"+c.name+"-node2", client.ContainerKillOptions{Signal: "SIGKILL"}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 60*time.Second, "node2's tasks out", func() bool {
			_, on := lb.upOn("web")
			return on["node2"] == 0
		})
		t.Logf("node2 killed: its tasks out of rotation after %s", time.Since(stopped).Round(100*time.Millisecond))
		waitFor(t, 90*time.Second, "6 tasks up on the others", func() bool { n, _ := lb.upOn("web"); return n == 6 })
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

// load is a bounded loop of new connections through tierlb, each asking
// one request, from a few workers.
type load struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ok     atomic.Int64
	mu     sync.Mutex
	failed []error
}

func startLoad(front string, workers int, max time.Duration) *load {
	ctx, cancel := context.WithTimeout(context.Background(), max)
	l := &load{cancel: cancel}
	for range workers {
		l.wg.Go(func() {
			for n := 0; n < 100000 && ctx.Err() == nil; n++ {
				if _, err := ask(front); err != nil {
					l.mu.Lock()
					l.failed = append(l.failed, err)
					l.mu.Unlock()
					continue
				}
				l.ok.Add(1)
			}
		})
	}
	return l
}

func (l *load) stop() (ok int, failed []error) {
	l.cancel()
	l.wg.Wait()
	return int(l.ok.Load()), l.failed
}
