package docker

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// swarmCluster is a Swarm of node containers made by
// scripts/swarm-cluster.sh, torn down (by label) when the test ends.
type swarmCluster struct {
	t     *testing.T
	name  string
	dir   string           // host directory every node sees at /sockdir
	hosts []string         // node engines' unix:// sockets, node1 (the manager) first
	ips   []string         // node addresses on the cluster's bridge
	cli   []*client.Client // one per node
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// newSwarmCluster starts nodes nodes with images loaded into each.
func newSwarmCluster(t *testing.T, nodes int, images ...string) *swarmCluster {
	t.Helper()
	engine(t) // skips, or fails under CI=true, without an engine
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("the Swarm harness runs node containers with every capability: it needs root")
		}
		t.Skip("the Swarm harness needs root")
	}
	c := &swarmCluster{t: t, name: "t" + randHex(4)}
	script := filepath.Join(repoRoot(), "scripts", "swarm-cluster.sh")
	t.Cleanup(func() {
		if out, err := exec.Command(script, "down", c.name).CombinedOutput(); err != nil {
			t.Errorf("swarm-cluster.sh down %s: %v\n%s", c.name, err, out)
		}
	})
	args := append([]string{"up", c.name, strconv.Itoa(nodes)}, images...)
	start := time.Now()
	out, err := exec.Command(script, args...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("swarm-cluster.sh up: %v\n%s%s", err, out, stderr)
	}
	t.Logf("swarm of %d nodes up in %s", nodes, time.Since(start).Round(100*time.Millisecond))
	env := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	c.dir = env["TIERLB_SWARM_DIR"]
	for i := 1; i <= nodes; i++ {
		host, ip := env[fmt.Sprintf("TIERLB_SWARM_NODE%d_HOST", i)], env[fmt.Sprintf("TIERLB_SWARM_NODE%d_IP", i)]
		cli, err := client.New(client.WithHost(host), client.WithAPIVersionNegotiation())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cli.Close() })
		c.hosts, c.ips, c.cli = append(c.hosts, host), append(c.ips, ip), append(c.cli, cli)
	}
	return c
}

// docker runs the docker CLI against node n (1-based) and returns its
// trimmed output.
func (c *swarmCluster) docker(n int, args ...string) string {
	c.t.Helper()
	out, err := c.dockerErr(n, args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

func (c *swarmCluster) dockerErr(n int, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", append([]string{"-H", c.hosts[n-1]}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("docker %s on node%d: %w\n%s", strings.Join(args, " "), n, err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// tierlbInSwarm is tierlb running in a container on the manager, attached
// to overlay networks, its ports published on node1's address.
type tierlbInSwarm struct {
	c     *swarmCluster
	id    string
	front string // node1:8080, the web service
	admin string // node1:9090
}

// runTierlb starts tierlb on node1 with this config (services: and the
// rest) on the given attachable overlays, and waits for /readyz.
func (c *swarmCluster) runTierlb(image, config string, overlays ...string) *tierlbInSwarm {
	c.t.Helper()
	if err := os.WriteFile(filepath.Join(c.dir, "tierlb.yaml"), []byte(config), 0o644); err != nil {
		c.t.Fatal(err)
	}
	args := []string{"run", "-d", "--name", "tierlb", "--label", testLabel + "=1", "--user", "0",
		"-v", "/run/docker.sock:/var/run/docker.sock:ro", "-v", "/sockdir/tierlb.yaml:/etc/tierlb.yaml:ro",
		"-p", "8080:8080", "-p", "9090:9090", "--network", overlays[0], image, "run", "--config", "/etc/tierlb.yaml"}
	s := &tierlbInSwarm{c: c, id: c.docker(1, args...), front: c.ips[0] + ":8080", admin: c.ips[0] + ":9090"}
	for _, o := range overlays[1:] {
		c.docker(1, "network", "connect", o, s.id)
	}
	c.t.Cleanup(func() {
		if c.t.Failed() {
			logs, _ := c.dockerErr(1, "logs", "--tail", "80", s.id)
			c.t.Logf("tierlb logs (tail):\n%s", logs)
		}
	})
	waitFor(c.t, 30*time.Second, "tierlb ready", func() bool { code, _ := s.get("/readyz"); return code == http.StatusOK })
	return s
}

func (s *tierlbInSwarm) get(path string) (int, string) {
	hc := &http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get("http://" + s.admin + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// swarmBackend is the part of /api/v1/services a test looks at.
type swarmBackend struct {
	ID    string `json:"id"`
	Node  string `json:"node"`
	Slot  int    `json:"slot"`
	State string `json:"state"`
}

// backendsOf returns a service's backends as tierlb's admin API shows them.
func (s *tierlbInSwarm) backendsOf(service string) []swarmBackend {
	code, body := s.get("/api/v1/services")
	if code != http.StatusOK {
		return nil
	}
	var svcs []struct {
		Name     string         `json:"name"`
		Backends []swarmBackend `json:"backends"`
	}
	if err := json.Unmarshal([]byte(body), &svcs); err != nil {
		return nil
	}
	for _, sv := range svcs {
		if sv.Name == service {
			return sv.Backends
		}
	}
	return nil
}

// upOn counts the service's backends in state up, by node.
func (s *tierlbInSwarm) upOn(service string) (total int, nodes map[string]int) {
	nodes = map[string]int{}
	for _, b := range s.backendsOf(service) {
		if b.State == "up" {
			total++
			nodes[b.Node]++
		}
	}
	return total, nodes
}

// explained returns explain's entries as raw maps.
func (s *tierlbInSwarm) explained() []map[string]any {
	_, body := s.get("/api/v1/explain")
	var out []map[string]any
	_ = json.Unmarshal([]byte(body), &out)
	return out
}

// askN opens n connections through tierlb, one request each.
func askN(front string, n int) ([]string, error) {
	var got []string
	for range n {
		name, err := ask(front)
		if err != nil {
			return got, err
		}
		got = append(got, name)
	}
	return got, nil
}
