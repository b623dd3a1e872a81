package docker

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/tierlb/tierlb/internal/testkit"
)

// The end-to-end tests run tierlb itself in a container, as users do: built
// from this repository into a FROM scratch image, reading the engine's
// socket as a non-root user with the socket's group added, attached to an
// internal network of replicas and to one ordinary network that publishes
// its ports on 127.0.0.1.

var (
	tierlbOnce sync.Once
	tierlbBin  string
	tierlbErr  error
)

// e2eBinary builds a static cmd/tierlb once per test binary.
func e2eBinary(t *testing.T) string {
	t.Helper()
	tierlbOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tierlb-e2e")
		if err != nil {
			tierlbErr = err
			return
		}
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		tierlbBin = filepath.Join(dir, "tierlb")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", tierlbBin, "./cmd/tierlb")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			tierlbErr = fmt.Errorf("go build ./cmd/tierlb: %w\n%s", err, out)
		}
	})
	if tierlbErr != nil {
		t.Fatal(tierlbErr)
	}
	return tierlbBin
}

// e2eStack is tierlb in a container in front of whoami replicas.
type e2eStack struct {
	*testEnv
	app   string // internal network of the replicas
	proxy string // tierlb's container
	front string // 127.0.0.1:port published for the app service (8080)
	admin string // 127.0.0.1:port published for the admin API (9090)
	ports map[int]string
}

// newE2EStack starts tierlb with services (the YAML list under services:)
// and publishes 8080, 9090 and extra ports on 127.0.0.1. It returns once
// /readyz says the first Docker sync is done.
func newE2EStack(t *testing.T, services string, extra ...int) *e2eStack {
	return newE2EStackVia(t, "", services, extra...)
}

// newE2EStackVia is newE2EStack with tierlb reaching the engine through
// the unix socket at sock ("": the engine's own).
func newE2EStackVia(t *testing.T, sock, services string, extra ...int) *e2eStack {
	e := newTestEnv(t)
	bin := e2eBinary(t)
	ref := buildImage(t, e.cli, bin, "tierlb", "FROM scratch\nCOPY tierlb /tierlb\nUSER 65532:65532\nENTRYPOINT [\"/tierlb\"]\n")
	dir := t.TempDir()

	s := &e2eStack{testEnv: e, app: e.network("app"), ports: map[int]string{}}
	front := e.bridge("front", false)
	conf := fmt.Sprintf("admin: {listen: 0.0.0.0:9090}\nlog: {level: debug}\ndocker: {enabled: \"true\", label_prefix: %s, resync_interval: 30s}\nservices:\n%s", e.prefix, services)
	if err := os.WriteFile(filepath.Join(dir, "tierlb.yaml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	engineSock := strings.TrimPrefix(e.cli.DaemonHost(), "unix://")
	var st syscall.Stat_t
	if err := syscall.Stat(engineSock, &st); err != nil {
		t.Fatalf("engine socket %s: %v", engineSock, err)
	}
	if sock == "" {
		sock = engineSock
	}
	exposed, bindings := network.PortSet{}, network.PortMap{}
	for _, p := range append([]int{8080, 9090}, extra...) {
		port := network.MustParsePort(strconv.Itoa(p) + "/tcp")
		exposed[port] = struct{}{}
		bindings[port] = []network.PortBinding{{HostIP: netip.MustParseAddr("127.0.0.1")}}
	}
	res, err := e.cli.ContainerCreate(t.Context(), client.ContainerCreateOptions{
		Name: e.prefix + "-tierlb",
		Config: &container.Config{
			Image: ref, Cmd: []string{"run", "--config", "/etc/tierlb.yaml"},
			Labels: map[string]string{testLabel: "1"}, ExposedPorts: exposed,
		},
		HostConfig: &container.HostConfig{
			NetworkMode:  container.NetworkMode(front),
			Binds:        []string{sock + ":/var/run/docker.sock:ro", filepath.Join(dir, "tierlb.yaml") + ":/etc/tierlb.yaml:ro"},
			GroupAdd:     []string{strconv.Itoa(int(st.Gid))}, // the documented non-root way
			PortBindings: bindings,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	s.proxy = res.ID
	t.Cleanup(func() {
		if t.Failed() {
			// Access lines drown the rest; the last 150 others tell the story.
			var keep []string
			for line := range strings.SplitSeq(s.logs(), "\n") {
				if !strings.Contains(line, "msg=connection ") {
					keep = append(keep, line)
				}
			}
			t.Logf("tierlb logs without access lines (tail):\n%s", strings.Join(keep[max(0, len(keep)-150):], "\n"))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = e.cli.ContainerRemove(ctx, s.proxy, client.ContainerRemoveOptions{Force: true})
	})
	if _, err := e.cli.NetworkConnect(t.Context(), s.app, client.NetworkConnectOptions{Container: s.proxy}); err != nil {
		t.Fatal(err)
	}
	e.start(s.proxy)
	in, err := e.cli.ContainerInspect(t.Context(), s.proxy, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for port, b := range in.Container.NetworkSettings.Ports {
		if len(b) == 0 {
			t.Fatalf("tierlb's port %s is not published", port)
		}
		s.ports[int(port.Num())] = net.JoinHostPort("127.0.0.1", b[0].HostPort)
	}
	s.front, s.admin = s.ports[8080], s.ports[9090]
	testkit.Eventually(t, 20*time.Second, "tierlb ready", func() bool {
		code, _ := s.get("/readyz")
		return code == http.StatusOK
	})
	return s
}

// get asks tierlb's admin API; code 0 when it does not answer.
func (s *e2eStack) get(path string) (int, string) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + s.admin + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// logs returns tierlb's log so far.
func (s *e2eStack) logs() string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc, err := s.cli.ContainerLogs(ctx, s.proxy, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return "logs: " + err.Error()
	}
	defer rc.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, rc); err != nil {
		fmt.Fprintf(&out, "\n(logs: %v)", err)
	}
	return out.String()
}

// accessLine matches tierlb's access log: the line is written when the
// connection ends, so it began duration earlier.
var accessLine = regexp.MustCompile(`time=(\S+) level=INFO msg=connection service=\S+ client=\S+ backend=(\S+) .*duration=(\S+)`)

// connStarts returns when each proxied connection to backend began, as
// tierlb logged it (millisecond log timestamps).
func connStarts(logs, backend string) []time.Time {
	var out []time.Time
	for _, m := range accessLine.FindAllStringSubmatch(logs, -1) {
		if m[2] != backend {
			continue
		}
		end, err1 := time.Parse(time.RFC3339Nano, m[1])
		d, err2 := time.ParseDuration(m[3])
		if err1 == nil && err2 == nil {
			out = append(out, end.Add(-d))
		}
	}
	return out
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
	res, err := cli.ImageBuild(t.Context(), &buf, client.ImageBuildOptions{Tags: []string{ref}, Labels: map[string]string{testLabel: "1"}, Remove: true, ForceRemove: true})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(res.Body)
	res.Body.Close()
	t.Cleanup(func() {
		// PruneChildren also removes the untagged layers of the build.
		_, _ = cli.ImageRemove(context.Background(), ref, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	})
	if bytes.Contains(out, []byte(`"error"`)) {
		t.Fatalf("build %s: %s", ref, out)
	}
	return ref
}

// ask opens a new connection through tierlb and returns the replica's name.
func ask(front string) (string, error) {
	// A client's kernel resends a lost SYN after 1 s: a dial bound that
	// short counts one dropped packet on a loaded machine as a failure.
	c, err := net.DialTimeout("tcp", front, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return askOn(c)
}

// askOn sends GET /name on an open connection.
func askOn(c net.Conn) (string, error) {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET /name HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return "", err
	}
	return readName(c)
}

// readName reads one response to GET /name and returns its body.
func readName(c net.Conn) (string, error) {
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
