package docker

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// The end-to-end tests run tierlb itself in a container, as users do. They
// need cmd/tierlb to build and to run Docker discovery (import this
// package); until then they skip and say why.

// e2eBinary builds a static cmd/tierlb, or skips.
func e2eBinary(t *testing.T, dir string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	if err := exec.Command("grep", "-rlq", "tierlb/tierlb/backends/docker", filepath.Join(root, "cmd", "tierlb")).Run(); err != nil {
		t.Skip("cmd/tierlb does not wire Docker discovery (backends/docker) yet; end-to-end tests skipped")
	}
	bin := filepath.Join(dir, "tierlb")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/tierlb")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("go build ./cmd/tierlb failed, end-to-end tests skipped: %v\n%s", err, out)
	}
	return bin
}

// e2eStack is tierlb in a container in front of whoami replicas.
type e2eStack struct {
	*testEnv
	app   string // internal network of the replicas
	proxy string // tierlb's container
	front string // 127.0.0.1:port published by tierlb
}

func newE2EStack(t *testing.T) *e2eStack {
	dir := t.TempDir()
	bin := e2eBinary(t, dir)
	e := newTestEnv(t)
	ref := buildImage(t, e.cli, bin, "tierlb", "FROM scratch\nCOPY tierlb /tierlb\nUSER 65532:65532\nENTRYPOINT [\"/tierlb\"]\n")

	s := &e2eStack{testEnv: e, app: e.network("app")}
	front := e.bridge("front", false)
	conf := fmt.Sprintf(`admin: {listen: ""}
log: {level: debug}
docker: {enabled: "true", label_prefix: %s, resync_interval: 30s}
services:
  - name: app
    listen: 0.0.0.0:8080
    retries: 2
    timeouts: {connect: 500ms}
    backends: {docker: {service: app, port: 8080}}
    health: {type: none}
`, e.prefix)
	if err := os.WriteFile(filepath.Join(dir, "tierlb.yaml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := strings.TrimPrefix(e.cli.DaemonHost(), "unix://")
	var st syscall.Stat_t
	if err := syscall.Stat(sock, &st); err != nil {
		t.Skipf("engine socket %s: %v", sock, err)
	}
	res, err := e.cli.ContainerCreate(t.Context(), client.ContainerCreateOptions{
		Name: e.prefix + "-tierlb",
		Config: &container.Config{
			Image: ref, Cmd: []string{"run", "--config", "/etc/tierlb.yaml"},
			Labels: map[string]string{testLabel: "1"}, ExposedPorts: network.PortSet{network.MustParsePort("8080/tcp"): {}},
		},
		HostConfig: &container.HostConfig{
			NetworkMode:  container.NetworkMode(front),
			Binds:        []string{sock + ":/var/run/docker.sock:ro", filepath.Join(dir, "tierlb.yaml") + ":/etc/tierlb.yaml:ro"},
			GroupAdd:     []string{strconv.Itoa(int(st.Gid))}, // the documented non-root way
			PortBindings: network.PortMap{network.MustParsePort("8080/tcp"): {{HostIP: netip.MustParseAddr("127.0.0.1")}}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	s.proxy = res.ID
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := e.cli.ContainerLogs(context.Background(), s.proxy, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: "60"})
			if logs != nil {
				b, _ := io.ReadAll(logs)
				t.Logf("tierlb logs:\n%s", b)
			}
		}
		_, _ = e.cli.ContainerRemove(context.Background(), s.proxy, client.ContainerRemoveOptions{Force: true})
	})
	if _, err := e.cli.NetworkConnect(t.Context(), s.app, client.NetworkConnectOptions{Container: s.proxy}); err != nil {
		t.Fatal(err)
	}
	e.start(s.proxy)
	in, err := e.cli.ContainerInspect(t.Context(), s.proxy, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b := in.Container.NetworkSettings.Ports[network.MustParsePort("8080/tcp")]
	if len(b) == 0 {
		t.Fatal("tierlb's port is not published")
	}
	s.front = net.JoinHostPort("127.0.0.1", b[0].HostPort)
	return s
}

func buildImage(t *testing.T, cli *client.Client, bin, name, dockerfile string) string {
	t.Helper()
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	_ = tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(dockerfile))})
	_, _ = tw.Write([]byte(dockerfile))
	_ = tw.WriteHeader(&tar.Header{Name: filepath.Base(bin), Mode: 0o755, Size: int64(len(data))})
	_, _ = tw.Write(data)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	ref := "tierlb-test-" + name + ":" + randHex(4)
	res, err := cli.ImageBuild(t.Context(), &buf, client.ImageBuildOptions{Tags: []string{ref}, Labels: map[string]string{testLabel: "1"}, Remove: true})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if bytes.Contains(out, []byte(`"error"`)) {
		t.Fatalf("build %s: %s", ref, out)
	}
	t.Cleanup(func() {
		_, _ = cli.ImageRemove(context.Background(), ref, client.ImageRemoveOptions{Force: true})
	})
	return ref
}

// ask opens a new connection through tierlb and returns the replica's name.
func ask(front string) (string, error) {
	c, err := net.DialTimeout("tcp", front, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return askOn(c)
}

// askOn sends GET /name on an open connection.
func askOn(c net.Conn) (string, error) {
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "GET /name HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	length := -1
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimSpace(line)
		if line == "" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "content-length") {
			length, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if length < 0 {
		return "", fmt.Errorf("no content-length")
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(r, body); err != nil {
		return "", err
	}
	return strings.TrimSpace(string(body)), nil
}

func TestE2ERoundRobinStartStopKill(t *testing.T) {
	s := newE2EStack(t)
	labels := map[string]string{s.label("service"): "app"}
	names := map[string]string{} // replica name → container ID
	for i := 1; i <= 3; i++ {
		n := fmt.Sprintf("r%d", i)
		id := s.run(n, runOpts{nets: []string{s.app}, labels: labels, args: []string{"--listen", ":8080", "--name", n}, stopSignal: "SIGUSR1", stopTimeout: 3})
		names[n] = id
	}
	waitFor(t, 15*time.Second, "three replicas through tierlb", func() bool {
		seen := map[string]bool{}
		for range 6 {
			if n, err := ask(s.front); err == nil {
				seen[n] = true
			}
		}
		return len(seen) == 3
	})

	// Exact round robin: every window of three new connections hits each
	// replica once.
	var got []string
	for range 30 {
		n, err := ask(s.front)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, n)
	}
	for i := 3; i < len(got); i++ {
		if got[i] != got[i-3] {
			t.Fatalf("not an exact rotation: %v", got)
		}
	}

	// docker start → first proxied connection, ten times.
	var startLat []time.Duration
	for i := range 10 {
		n := fmt.Sprintf("s%d", i)
		id := s.run(n, runOpts{nets: []string{s.app}, labels: labels, args: []string{"--listen", ":8080", "--name", n}, noStart: true})
		t0 := time.Now()
		s.start(id)
		waitFor(t, 5*time.Second, n+" proxied", func() bool { got, err := ask(s.front); return err == nil && got == n })
		startLat = append(startLat, time.Since(t0))
		if _, err := s.cli.ContainerKill(t.Context(), id, client.ContainerKillOptions{Signal: "SIGKILL"}); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("docker start → first proxied connection: median %s %v", median(startLat), startLat)

	// docker stop of r1 with a connection open to it: no new connection
	// reaches r1 after the stop event; the open one keeps working until r1 exits.
	var held net.Conn
	for range 20 {
		c, err := net.DialTimeout("tcp", s.front, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := askOn(c); err == nil && n == "r1" {
			held = c
			break
		}
		c.Close()
	}
	if held == nil {
		t.Fatal("no connection landed on r1")
	}
	defer held.Close()
	stopped := make(chan error, 1)
	go func() {
		_, err := s.cli.ContainerStop(context.Background(), names["r1"], client.ContainerStopOptions{})
		stopped <- err
	}()
	time.Sleep(300 * time.Millisecond) // the stop event has been sent by now; r1 ignores SIGUSR1 for 3s
	hits := 0
	for range 30 {
		if n, err := ask(s.front); err == nil && n == "r1" {
			hits++
		}
	}
	if n, err := askOn(held); err != nil || n != "r1" {
		t.Errorf("the connection open to r1 broke while it was stopping: %q, %v", n, err)
	}
	if hits > 0 {
		t.Errorf("%d new connections reached r1 after docker stop", hits)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}

	// docker kill of r2 under traffic: clients are retried transparently.
	failures := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(50 * time.Millisecond)
		_, _ = s.cli.ContainerKill(context.Background(), names["r2"], client.ContainerKillOptions{Signal: "SIGKILL"})
	}()
	for range 200 {
		if _, err := ask(s.front); err != nil {
			failures++
		}
	}
	<-done
	if failures > 0 {
		t.Errorf("%d of 200 requests failed around docker kill", failures)
	}
}
