package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/tierlb/tierlb/internal/testkit"
)

// loadLoop is a client load through tierlb: new connections, each asking
// one request (GET /name, Connection: close), the way the issue's
// `wrk -H 'Connection: close'` did, paced by testkit, counting what fails.
type loadLoop struct {
	*testkit.Load
}

// startConnLoad runs workers against front until the test ends, for at most
// maxDur, at testkit's sustained rate: the updates under this load last
// minutes, longer than the local ports' TIME_WAIT.
func startConnLoad(t *testing.T, front string, workers int, maxDur time.Duration) *loadLoop {
	l := &loadLoop{}
	pace := testkit.Pace{Rate: testkit.SustainedRate, Count: int64(maxDur.Seconds()) * testkit.SustainedRate, Within: maxDur}
	l.Load = testkit.StartLoad(t, workers, pace, func(context.Context) error {
		_, err := askClose(front)
		return err
	})
	return l
}

// askClose sends one request on a new connection that the server closes
// after its answer, and wants the whole answer. A lost connection shows at
// once (refused, reset, EOF), so the deadline is only there to end a hung
// one: generous, since this machine may stall for seconds under load.
func askClose(front string) (string, error) {
	c, err := net.DialTimeout("tcp", front, 20*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, "GET /name HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		return "", err
	}
	return readName(c)
}

// serviceStates returns the state of each backend of a service as
// tierlb's admin API reports it.
func (s *e2eStack) serviceStates(service string) []string {
	code, body := s.get("/api/v1/services")
	if code != 200 {
		return nil
	}
	var svcs []struct {
		Name     string `json:"name"`
		Backends []struct {
			State string `json:"state"`
		} `json:"backends"`
	}
	if json.Unmarshal([]byte(body), &svcs) != nil {
		return nil
	}
	var out []string
	for _, sv := range svcs {
		if sv.Name == service {
			for _, b := range sv.Backends {
				out = append(out, b.State)
			}
		}
	}
	return out
}

// settled reports whether service has exactly n backends, all up.
func (s *e2eStack) settled(service string, n int) bool {
	st := s.serviceStates(service)
	if len(st) != n {
		return false
	}
	for _, x := range st {
		if x != "up" {
			return false
		}
	}
	return true
}

// composeProject is a docker-compose v1 project of whoami replicas on the
// stack's app network, removed at cleanup.
type composeProject struct {
	t    *testing.T
	cli  *client.Client
	bin  string // docker-compose
	name string
	file string
}

// composeApp writes a compose file for service app (the stack's image and
// labels, the given whoami arguments) and brings up scale replicas.
func (s *e2eStack) composeApp(scale int, args ...string) *composeProject {
	t := s.t
	t.Helper()
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("docker-compose required under CI=true: %v", err)
		}
		t.Skipf("no docker-compose: %v", err)
	}
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = fmt.Sprintf("%q", a)
	}
	yml := fmt.Sprintf(`version: "2.4"
services:
  app:
    image: %s
    command: [%s]
    labels: {%s: "1", %s: app, %s: "8080"}
    stop_grace_period: 10s
    networks: [app]
networks:
  app: {external: true, name: %s}
`, s.image, strings.Join(quoted, ", "), testLabel, s.label("service"), s.label("port"), s.app)
	p := &composeProject{t: t, cli: s.cli, bin: bin, name: s.prefix + "c", file: filepath.Join(t.TempDir(), "docker-compose.yml")}
	if err := os.WriteFile(p.file, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = exec.Command(p.bin, "-p", p.name, "-f", p.file, "down", "-t", "0").Run()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, id := range p.ids(ctx) {
			_, _ = p.cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true})
		}
	})
	p.run("up", "-d", "--scale", fmt.Sprintf("app=%d", scale))
	return p
}

// run runs docker-compose on the project and fails the test if it fails.
func (p *composeProject) run(args ...string) {
	p.t.Helper()
	cmd := exec.Command(p.bin, append([]string{"-p", p.name, "-f", p.file}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		p.t.Fatalf("docker-compose %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// ids lists the project's containers, running or not, oldest first.
func (p *composeProject) ids(ctx context.Context) []string {
	res, err := p.cli.ContainerList(ctx, client.ContainerListOptions{
		All: true, Filters: make(client.Filters).Add("label", "com.docker.compose.project="+p.name),
	})
	if err != nil {
		return nil
	}
	var out []string
	for i := len(res.Items) - 1; i >= 0; i-- {
		out = append(out, res.Items[i].ID)
	}
	return out
}

// rollout replaces the service's replicas with scripts/rollout.sh.
func (p *composeProject) rollout(service, admin string) {
	p.t.Helper()
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "..", "scripts", "rollout.sh")
	cmd := exec.Command(script, "-p", p.name, "-f", p.file, "--admin", admin, service)
	if out, err := cmd.CombinedOutput(); err != nil {
		p.t.Fatalf("rollout.sh: %v\n%s", err, out)
	}
}
