package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/tierlb/tierlb/internal/testkit"
)

// The tests in *_engine_test.go run against the real Docker engine. Every
// object they create carries testLabel and is removed in t.Cleanup.
const testLabel = "tierlb.test"

var (
	imageOnce sync.Once
	imageRef  string
	imageErr  error
	subnetMu  sync.Mutex
)

// engine returns a client for the real engine, or skips (fails under
// CI=true) when there is none.
func engine(t *testing.T) *client.Client {
	t.Helper()
	if testing.Short() {
		t.Skip("engine tests skipped with -short")
	}
	cli, err := client.New(client.FromEnv)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err = cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
		cancel()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("docker engine required under CI=true: %v", err)
		}
		t.Skipf("no docker engine (%v): skipping engine tests; set CI=true to make this a failure", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// testImage builds (once per test binary) a FROM scratch image around a
// static cmd/whoami, so no registry is needed.
func testImage(t *testing.T, cli *client.Client) string {
	t.Helper()
	imageOnce.Do(func() { imageRef, imageErr = buildWhoamiImage(cli) })
	if imageErr != nil {
		t.Fatalf("build test image: %v", imageErr)
	}
	return imageRef
}

func TestMain(m *testing.M) {
	code := m.Run()
	if imageRef != "" { // images are shared by tests, so removed once at the end
		if cli, err := client.New(client.FromEnv); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_, _ = cli.ImageRemove(ctx, imageRef, client.ImageRemoveOptions{Force: true, PruneChildren: true})
			cancel()
		}
	}
	os.Exit(code)
}

func buildWhoamiImage(cli *client.Client) (string, error) {
	dir, err := os.MkdirTemp("", "tierlb-docker-test")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	bin := filepath.Join(dir, "whoami")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/whoami")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/whoami: %w: %s", err, out)
	}
	binData, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	dockerfile := "FROM scratch\nCOPY whoami /whoami\nEXPOSE 8080\nENTRYPOINT [\"/whoami\"]\nCMD [\"--listen\", \":8080\"]\n"
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{{"Dockerfile", 0o644, []byte(dockerfile)}, {"whoami", 0o755, binData}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data))}); err != nil {
			return "", err
		}
		if _, err := tw.Write(f.data); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	ref := "tierlb-test-whoami:" + randHex(4)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := cli.ImageBuild(ctx, &buf, client.ImageBuildOptions{
		Tags: []string{ref}, Labels: map[string]string{testLabel: "1"}, Remove: true, ForceRemove: true,
	})
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	dec := json.NewDecoder(res.Body)
	for {
		var msg struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return "", fmt.Errorf("read build output: %w", err)
		}
		if msg.Error != "" {
			return "", fmt.Errorf("docker build: %s", msg.Error)
		}
	}
	return ref, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// testEnv names and cleans up one test's Docker objects.
type testEnv struct {
	t      *testing.T
	cli    *client.Client
	image  string
	prefix string // label prefix and name prefix, unique per test
	genN   int
}

func newTestEnv(t *testing.T) *testEnv {
	cli := engine(t)
	return &testEnv{t: t, cli: cli, image: testImage(t, cli), prefix: "tlbt" + randHex(3)}
}

// network creates an --internal bridge network on a free /24 in
// 172.31.240.0/20, away from Docker's default pools.
func (e *testEnv) network(name string) string {
	e.t.Helper()
	return e.bridge(name, true)
}

// bridge creates a bridge network on a free test subnet; internal=false only
// for the network that carries a port published on 127.0.0.1.
func (e *testEnv) bridge(name string, internal bool) string {
	e.t.Helper()
	subnetMu.Lock()
	defer subnetMu.Unlock()
	full := e.prefix + "-" + name
	ctx := e.t.Context()
	list, err := e.cli.NetworkList(ctx, client.NetworkListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	var used []netip.Prefix
	for _, n := range list.Items {
		for _, c := range n.IPAM.Config {
			used = append(used, c.Subnet)
		}
	}
	for i := 240; i < 256; i++ {
		cand := netip.MustParsePrefix(fmt.Sprintf("172.31.%d.0/24", i))
		if overlaps(cand, used) {
			continue
		}
		_, err := e.cli.NetworkCreate(ctx, full, client.NetworkCreateOptions{
			Driver: "bridge", Internal: internal, Labels: map[string]string{testLabel: "1"},
			IPAM: &network.IPAM{Config: []network.IPAMConfig{{Subnet: cand}}},
		})
		if err != nil && strings.Contains(err.Error(), "overlap") {
			continue // someone else took it meanwhile
		}
		if err != nil {
			e.t.Fatalf("create network %s: %v", full, err)
		}
		e.t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := e.cli.NetworkRemove(ctx, full, client.NetworkRemoveOptions{}); err != nil {
				e.t.Errorf("remove network %s: %v", full, err)
			}
		})
		return full
	}
	e.t.Fatal("no free /24 in 172.31.240.0/20 for a test network")
	return ""
}

func overlaps(p netip.Prefix, used []netip.Prefix) bool {
	for _, u := range used {
		if u.IsValid() && (u.Overlaps(p)) {
			return true
		}
	}
	return false
}

type runOpts struct {
	labels      map[string]string
	nets        []string
	args        []string
	stopSignal  string
	stopTimeout int
	health      *container.HealthConfig
	noStart     bool
	netMode     string // "container:<id>": join that container's network namespace
}

// run creates (and starts) a whoami container; it is force-removed at cleanup.
func (e *testEnv) run(name string, o runOpts) string {
	e.t.Helper()
	ctx := e.t.Context()
	labels := map[string]string{testLabel: "1"}
	for k, v := range o.labels {
		labels[k] = v
	}
	cfg := &container.Config{Image: e.image, Labels: labels, Cmd: o.args, StopSignal: o.stopSignal, Healthcheck: o.health}
	if o.stopTimeout > 0 {
		cfg.StopTimeout = &o.stopTimeout
	}
	nc := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{}}
	hc := &container.HostConfig{}
	if o.netMode != "" {
		hc.NetworkMode = container.NetworkMode(o.netMode)
	} else if len(o.nets) > 0 {
		nc.EndpointsConfig[o.nets[0]] = &network.EndpointSettings{}
		hc.NetworkMode = container.NetworkMode(o.nets[0])
	} else {
		hc.NetworkMode = "none"
	}
	res, err := e.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: e.prefix + "-" + name, Config: cfg, HostConfig: hc, NetworkingConfig: nc,
	})
	if err != nil {
		e.t.Fatalf("create container %s: %v", name, err)
	}
	id := res.ID
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := e.cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true}); err != nil && !strings.Contains(err.Error(), "No such container") {
			e.t.Errorf("remove container %s: %v", name, err)
		}
	})
	for _, n := range o.nets[min(1, len(o.nets)):] {
		if _, err := e.cli.NetworkConnect(ctx, n, client.NetworkConnectOptions{Container: id}); err != nil {
			e.t.Fatalf("connect %s to %s: %v", name, n, err)
		}
	}
	if !o.noStart {
		e.start(id)
	}
	return id
}

func (e *testEnv) start(id string) {
	e.t.Helper()
	if _, err := e.cli.ContainerStart(e.t.Context(), id, client.ContainerStartOptions{}); err != nil {
		e.t.Fatalf("start %.12s: %v", id, err)
	}
}

// provider runs a provider on the real engine (or host) until the test ends.
func (e *testEnv) provider(cfg Config, sels []ServiceSelector, sink Sink, cli client.APIClient) *Provider {
	e.t.Helper()
	cfg.LabelPrefix = e.prefix
	if cli == nil {
		cli = e.cli
	}
	p, err := New(cfg, sels, sink, Options{Client: cli, Logger: discardLogger()})
	if err != nil {
		e.t.Fatal(err)
	}
	p.backoffMin, p.backoffMax = 20*time.Millisecond, 200*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("Run: %v", err)
		}
	})
	testkit.Eventually(e.t, 10*time.Second, "first sync", func() bool { ok, _ := p.Ready(); return ok })
	return p
}

func (e *testEnv) label(k string) string { return e.prefix + "." + k }
