package docker

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/tierlb/tierlb/internal/testkit"
)

// upgradeServices: app takes the new connections (GET /name, closed by the
// replica), echo the long-lived ones.
const upgradeServices = `  - name: app
    listen: 0.0.0.0:8080
    timeouts: {connect: 1s}
    backends: {docker: {service: app, port: 8080}}
    health: {type: tcp, interval: 500ms, rise: 1}
  - name: echo
    listen: 0.0.0.0:7000
    backends: {docker: {service: app, port: 7000}}
    health: {type: tcp, interval: 500ms, rise: 1}
`

// TestEngineUpgradeTierlb upgrades tierlb to a new image under load, both
// ways a user can: replacing its container (stop, remove, create, start:
// what `docker-compose up --force-recreate tierlb` does), and the hand-over
// (tierlb containers in a holder's network namespace, the new one taking
// the sockets from the old). The hand-over must lose nothing: no new
// connection fails, no long-lived one is cut. TIERLB_UPGRADES sets how
// many upgrades each way (2; 10 for the README's figures).
func TestEngineUpgradeTierlb(t *testing.T) {
	rounds := 2
	if n, err := strconv.Atoi(os.Getenv("TIERLB_UPGRADES")); err == nil && n > 0 {
		rounds = n
	}
	for _, handOver := range []bool{false, true} {
		name := "container replaced"
		if handOver {
			name = "hand-over"
		}
		t.Run(name, func(t *testing.T) {
			s := newUpgradeStack(t, handOver)
			fresh := startConnLoad(t, s.front[8080], 8, 10*time.Minute)
			long := testkit.StartLongLived(t, s.front[7000], 100, 4*time.Second, 50*time.Millisecond, 10*time.Minute)
			testkit.Eventually(t, 30*time.Second, "the long-lived connections open", func() bool { return long.Open() == 100 })
			var took []time.Duration
			for i := range rounds {
				time.Sleep(time.Second)
				took = append(took, s.upgrade(t, s.images[(i+1)%2]))
			}
			time.Sleep(time.Second)
			fresh.Stop()
			long.Stop()
			ok, failed := fresh.Counts()
			done, cut, refused := long.Counts()
			t.Logf("upgrade: kind=%q upgrades=%d new=%d failed=%d long=%d cut=%d refused=%d took=%v",
				name, rounds, ok+failed, failed, done+cut, cut, refused, took)
			if failed > 0 {
				t.Logf("last failures: %s", fresh.LastErrors())
			}
			if ok == 0 {
				t.Fatal("no new connection succeeded")
			}
			if handOver && (failed > 0 || cut > 0 || refused > 0) {
				t.Errorf("hand-over: %d new connections failed, %d long-lived cut, %d refused (last: %v); want none", failed, cut, refused, long.LastError())
			}
		})
	}
}

// upgradeStack is tierlb in front of two whoami replicas, upgraded from
// one image to another.
type upgradeStack struct {
	*testEnv
	handOver bool
	images   [2]string // the same binary under two tags: an upgrade is a new image
	conf     string    // the config file, bind-mounted
	sockDir  string    // the volume the hand-over socket lives on
	app      string    // the replicas' network
	frontNet string    // the network that publishes the ports
	holder   string    // the network namespace's holder (hand-over only)
	current  string    // the running tierlb container
	gen      int
	front    map[int]string // published port → 127.0.0.1:host port
	hostPort map[int]int
}

func newUpgradeStack(t *testing.T, handOver bool) *upgradeStack {
	e := newTestEnv(t)
	bin := e2eBinary(t)
	s := &upgradeStack{testEnv: e, handOver: handOver, front: map[int]string{}, hostPort: map[int]int{}}
	for i := range s.images {
		// A label makes the two images differ, as two releases do.
		s.images[i] = buildImage(t, e.cli, bin, "tierlb", fmt.Sprintf("FROM scratch\nCOPY tierlb /tierlb\nLABEL release=%d\nUSER 65532:65532\nENTRYPOINT [\"/tierlb\"]\n", i))
	}
	s.app = e.network("app")
	s.frontNet = e.bridge("front", false)
	for range 2 {
		e.run(fmt.Sprintf("app%d", e.gen()), runOpts{nets: []string{s.app}, args: []string{"--listen", ":8080", "--echo", ":7000"},
			labels: map[string]string{e.label("service"): "app"}})
	}
	dir := t.TempDir()
	s.sockDir = filepath.Join(dir, "run")
	if err := os.Mkdir(s.sockDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(s.sockDir, 65532, 65532); err != nil {
		t.Fatalf("the socket volume must belong to tierlb's user: %v", err)
	}
	s.conf = filepath.Join(dir, "tierlb.yaml")
	conf := fmt.Sprintf("admin: {listen: 0.0.0.0:9090}\nlog: {access: false}\nshutdown: {drain_timeout: 30s}\nhandover: {socket: /run/tierlb/handover.sock}\n"+
		"docker: {enabled: \"true\", label_prefix: %s}\nservices:\n%s", e.prefix, upgradeServices)
	if !handOver {
		conf = strings.Replace(conf, "handover: {socket: /run/tierlb/handover.sock}\n", "", 1)
	}
	if err := os.WriteFile(s.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []int{8080, 7000} {
		_, port, _ := net.SplitHostPort(testkit.ClosedPort(t))
		s.hostPort[p], _ = strconv.Atoi(port)
		s.front[p] = "127.0.0.1:" + port
	}
	if handOver {
		s.holder = s.create("holder", s.images[0], []string{"hold"}, true)
		e.start(s.holder)
	}
	s.current = s.startTierlb(s.images[0])
	testkit.Eventually(t, 60*time.Second, "tierlb serving both replicas", func() bool {
		a, errA := ask(s.front[8080])
		b, errB := ask(s.front[8080])
		return errA == nil && errB == nil && a != b
	})
	return s
}

// create makes a container on the stack's networks: the holder (or, when
// tierlb replaces its container, tierlb itself) owns them and publishes
// the ports; a tierlb of the hand-over joins the holder's namespace.
func (s *upgradeStack) create(name, image string, cmd []string, owner bool) string {
	t := s.t
	t.Helper()
	engineSock := strings.TrimPrefix(s.cli.DaemonHost(), "unix://")
	var st syscall.Stat_t
	if err := syscall.Stat(engineSock, &st); err != nil {
		t.Fatalf("engine socket %s: %v", engineSock, err)
	}
	cfg := &container.Config{Image: image, Cmd: cmd, Labels: map[string]string{testLabel: "1"}}
	hc := &container.HostConfig{
		Binds:    []string{engineSock + ":/var/run/docker.sock:ro", s.conf + ":/etc/tierlb.yaml:ro", s.sockDir + ":/run/tierlb"},
		GroupAdd: []string{strconv.Itoa(int(st.Gid))},
	}
	if owner {
		cfg.ExposedPorts = network.PortSet{}
		hc.NetworkMode = container.NetworkMode(s.frontNet)
		hc.PortBindings = network.PortMap{}
		for p, hp := range s.hostPort {
			port := network.MustParsePort(strconv.Itoa(p) + "/tcp")
			cfg.ExposedPorts[port] = struct{}{}
			hc.PortBindings[port] = []network.PortBinding{{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: strconv.Itoa(hp)}}
		}
	} else {
		hc.NetworkMode = container.NetworkMode("container:" + s.holder)
	}
	res, err := s.cli.ContainerCreate(t.Context(), client.ContainerCreateOptions{Name: s.prefix + "-" + name, Config: cfg, HostConfig: hc})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	id := res.ID
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		_, _ = s.cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true})
	})
	if owner {
		if _, err := s.cli.NetworkConnect(t.Context(), s.app, client.NetworkConnectOptions{Container: id}); err != nil {
			t.Fatal(err)
		}
	}
	return id
}

// startTierlb creates and starts a tierlb container of image.
func (s *upgradeStack) startTierlb(image string) string {
	s.gen++
	id := s.create(fmt.Sprintf("tierlb%d", s.gen), image, []string{"run", "--config", "/etc/tierlb.yaml"}, !s.handOver)
	s.start(id)
	return id
}

// upgrade moves to image and returns how long the published ports had no
// tierlb of the new image accepting (replace) or the hand-over took.
func (s *upgradeStack) upgrade(t *testing.T, image string) time.Duration {
	t.Helper()
	began := time.Now()
	old := s.current
	if !s.handOver {
		// What Compose's recreate does: stop (SIGTERM, the drain), remove,
		// create, start.
		timeout := 40
		if _, err := s.cli.ContainerStop(t.Context(), old, client.ContainerStopOptions{Timeout: &timeout}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.cli.ContainerRemove(t.Context(), old, client.ContainerRemoveOptions{}); err != nil {
			t.Fatal(err)
		}
		s.current = s.startTierlb(image)
		testkit.Eventually(t, 60*time.Second, "the new tierlb answering", func() bool { _, err := ask(s.front[8080]); return err == nil })
		return time.Since(began)
	}
	s.current = s.startTierlb(image)
	accepting := regexp.MustCompile(`hand-over: accepting on the inherited sockets" since_start=(\S+)`)
	var m []string
	testkit.Eventually(t, 60*time.Second, "the hand-over", func() bool {
		m = accepting.FindStringSubmatch(s.containerLogs(s.current))
		return m != nil
	})
	took := time.Since(began)
	t.Logf("upgrade: the new tierlb accepted %s after its process started, %s after its container was created", m[1], took.Round(time.Millisecond))
	// The old one drains (its long-lived connections end within 6 s) and
	// exits 0 by itself; then it is removed.
	wait := s.cli.ContainerWait(t.Context(), old, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case res := <-wait.Result:
		if res.StatusCode != 0 {
			t.Errorf("the old tierlb exited %d after the hand-over, want 0:\n%s", res.StatusCode, s.containerLogs(old))
		}
	case err := <-wait.Error:
		t.Fatal(err)
	case <-time.After(60 * time.Second):
		t.Fatalf("the old tierlb still runs a minute after the hand-over:\n%s", s.containerLogs(old))
	}
	if _, err := s.cli.ContainerRemove(t.Context(), old, client.ContainerRemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	return took
}

func (s *upgradeStack) containerLogs(id string) string {
	return (&e2eStack{testEnv: s.testEnv, proxy: id}).logs()
}

// gen numbers the replicas of a test.
func (e *testEnv) gen() int {
	e.genN++
	return e.genN
}
