package faults

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tierlb/tierlb/internal/testkit"
)

// The examples' sysctls (examples/three-tier/docker-compose.yml and
// examples/swarm): namespaced, so a container without privileges may set
// them for its own namespace.
var exampleSysctls = []string{"net.ipv4.tcp_tw_reuse=1", "net.ipv4.ip_local_port_range=1024 65535",
	"net.ipv4.ip_local_reserved_ports=5432,8080-8081,9090"}

// TestLocalPortCapacity runs tierlb in a container on a bridge network in
// front of one backend container, and clients on the host that each send a
// few bytes, read them back and close first with a FIN: every connection
// leaves tierlb's socket toward the backend in TIME_WAIT in tierlb's
// namespace. With the examples' sysctls, up to 2,000 connections/s to the
// one backend address must all succeed: 35 s here (up to 70,000
// connections, more than the 28,232 ports a default namespace has), three
// minutes with TIERLB_LOCALPORT_FIGURES=1 or TIERLB_FAULTS=full. Those also
// run the "before": 700/s for 70 s in a default namespace, where tierlb
// must refuse clients for EADDRNOTAVAIL once its 28,232 ports are all in
// TIME_WAIT (after about 40 s), and warn before. The same limit, scaled
// down to 2,000 ports at 100/s, without and with tcp_tw_reuse, runs every
// time: any machine reaches it.
func TestLocalPortCapacity(t *testing.T) {
	figures := full() || os.Getenv("TIERLB_LOCALPORT_FIGURES") == "1"
	d := newDockerRig(t)
	backend := d.start(t, "backend", nil, "--entrypoint", "/whoami", d.image, "--listen", ":8080", "--echo", ":5432")

	after := 35 * time.Second
	if figures {
		after = 3 * time.Minute
	}
	t.Run("examples' sysctls, 2000 per second", func(t *testing.T) {
		res := d.measure(t, "after", exampleSysctls, backend, 2000, after)
		if res.gauge != 64508 {
			t.Errorf("tierlb_backend_local_port_capacity = %v, want 64508", res.gauge)
		}
		if !strings.Contains(res.capacity, "per_backend_per_second=64508 ") {
			t.Errorf("tierlb says %q, want 64508 connections/s per backend with these sysctls", res.capacity)
		}
		if res.failed != 0 {
			t.Errorf("%d of %d connections failed; first: %s", res.failed, res.total, res.firstErr)
		}
		if res.total <= 28232 {
			t.Logf("only %d connections in %s on this machine: no more than a default namespace's ports", res.total, res.took)
		}
		if res.warned {
			t.Errorf("tierlb warned of the local port capacity at 2000/s of 64508/s")
		}
		report(t, "local ports: 2,000 client-closes-first conn/s to one backend, examples' sysctls", verdict(t),
			"%d of %d failed in %s (%.0f/s, %.0f/s at best over 5 s); tierlb says 64508/s allowed; %d TIME_WAIT in its namespace at most",
			res.failed, res.total, res.took.Round(time.Second), float64(res.total)/res.took.Seconds(), res.peak, res.timeWait)
	})
	// The limit itself, scaled down so that any machine reaches it: 2,000
	// ports held 60 s each are 33 connections/s, so at 100/s they are all
	// in TIME_WAIT after 20 s and tierlb refuses clients from then on.
	t.Run("2000 ports without reuse, 100 per second", func(t *testing.T) {
		res := d.measure(t, "small", []string{"net.ipv4.ip_local_port_range=40000 41999"}, backend, 100, 40*time.Second)
		if res.gauge != 2000.0/60 {
			t.Errorf("tierlb_backend_local_port_capacity = %v, want %v", res.gauge, 2000.0/60)
		}
		if !strings.Contains(res.capacity, "per_backend_per_second=33 ") {
			t.Errorf("tierlb says %q, want 33 connections/s per backend with 2,000 ports", res.capacity)
		}
		if res.local == 0 || !strings.Contains(res.failedHow, "EADDRNOTAVAIL") {
			t.Errorf("%d clients refused for local resources (%q) at 100/s for 40 s with 2,000 ports", res.local, res.failedHow)
		}
		if res.local > 0 && res.localAfter < 10*time.Second {
			t.Errorf("the first refusal came %s after the start: before 2,000 ports could be used up at 100/s", res.localAfter)
		}
		if !res.warned {
			t.Errorf("tierlb did not warn of the local port capacity at 100/s of 33/s")
		}
		report(t, "local ports: 100 client-closes-first conn/s to one backend, 2,000 ports without reuse", verdict(t),
			"%d of %d failed; %d refused by tierlb for EADDRNOTAVAIL, the first after %s (2,000 ports / 100/s = 20 s); tierlb says 33/s allowed and warned; %d TIME_WAIT in its namespace at most",
			res.failed, res.total, res.local, res.localAfter.Round(time.Second), res.timeWait)
	})
	// And tcp_tw_reuse lifts it: the same 2,000 ports, each back after 1 s.
	t.Run("2000 ports with reuse, 100 per second", func(t *testing.T) {
		res := d.measure(t, "smallreuse", []string{"net.ipv4.ip_local_port_range=40000 41999", "net.ipv4.tcp_tw_reuse=1"}, backend, 100, 30*time.Second)
		if !strings.Contains(res.capacity, "per_backend_per_second=2000 ") {
			t.Errorf("tierlb says %q, want 2000 connections/s per backend with 2,000 ports reused after 1 s", res.capacity)
		}
		if res.failed != 0 || res.local != 0 || res.gauge != 2000 {
			t.Errorf("%d of %d connections failed, %d refused for local resources (first: %s); capacity gauge %v, want 2000", res.failed, res.total, res.local, res.firstErr, res.gauge)
		}
		report(t, "local ports: 100 client-closes-first conn/s to one backend, 2,000 ports, tcp_tw_reuse=1", verdict(t),
			"%d of %d failed; tierlb says 2000/s allowed; %d TIME_WAIT in its namespace at most",
			res.failed, res.total, res.timeWait)
	})
	if !figures {
		return
	}
	t.Run("default namespace, 700 per second", func(t *testing.T) {
		res := d.measure(t, "before", nil, backend, 700, 70*time.Second)
		if !strings.Contains(res.capacity, "per_backend_per_second=470 ") {
			t.Errorf("tierlb says %q, want 470 connections/s per backend in a default namespace", res.capacity)
		}
		if rate := float64(res.total) / res.took.Seconds(); rate < 520 {
			report(t, "local ports: 700 client-closes-first conn/s to one backend, default namespace (before)", "FAIL",
				"the client reached %.0f/s (%.0f/s at best over 5 s), under the 470/s limit: %d of %d failed, %d refused for EADDRNOTAVAIL; %d TIME_WAIT in tierlb's namespace at most",
				rate, res.peak, res.failed, res.total, res.local, res.timeWait)
			t.Fatalf("the client reached %.0f connections/s, too few to pass the 470/s limit: this machine is too busy for this figure", rate)
		}
		if res.failed == 0 || res.local == 0 {
			t.Errorf("%d connections failed, %d refused by tierlb for local resources, at 700/s for 70 s in a default namespace: the limit this test shows is not there", res.failed, res.local)
		}
		if !strings.Contains(res.failedHow, "EADDRNOTAVAIL") {
			t.Errorf("tierlb's log does not say why: %q", res.failedHow)
		}
		if !res.warned {
			t.Errorf("tierlb did not warn of the local port capacity at 700/s of 470/s")
		}
		report(t, "local ports: 700 client-closes-first conn/s to one backend, default namespace (before)", verdict(t),
			"%d of %d failed (%.0f/s, %.0f/s at best over 5 s); %d refused by tierlb for EADDRNOTAVAIL, the first after %s; tierlb says 470/s allowed and warned; %d TIME_WAIT in its namespace at most",
			res.failed, res.total, float64(res.total)/res.took.Seconds(), res.peak, res.local, res.localAfter.Round(time.Second), res.timeWait)
	})
}

// dockerRig is one test's image and network, removed at cleanup with
// every container labelled with its run id.
type dockerRig struct {
	id, label, image, network string
	subnet                    string // "172.31.N." prefix
	gateway                   string // the host's address on the network
	next                      int    // last host number given out
}

// newDockerRig builds a FROM scratch image around static tierlb and whoami
// binaries and creates a bridge network on a free /24. Without a Docker
// engine the test is skipped (failed under CI=true).
func newDockerRig(t *testing.T) *dockerRig {
	t.Helper()
	if err := exec.Command("docker", "version").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("docker engine required under CI=true: %v", err)
		}
		t.Skipf("no docker engine (%v)", err)
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	d := &dockerRig{id: "tlbp" + hex.EncodeToString(b), next: 9}
	d.label = "tierlb.test=" + d.id
	d.image = "tierlb-test-ports:" + d.id
	d.network = d.id
	t.Cleanup(func() {
		ids, _ := exec.Command("docker", "ps", "-aq", "--filter", "label="+d.label).Output()
		if f := strings.Fields(string(ids)); len(f) > 0 {
			_ = exec.Command("docker", append([]string{"rm", "-f"}, f...)...).Run()
		}
		_ = exec.Command("docker", "network", "rm", d.network).Run()
		_ = exec.Command("docker", "image", "rm", "-f", d.image).Run()
	})

	dir := t.TempDir()
	for _, pkg := range []string{"tierlb", "whoami"} {
		build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, pkg), "../cmd/"+pkg)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v: %s", pkg, err, out)
		}
	}
	dockerfile := "FROM scratch\nCOPY tierlb whoami /\nUSER 65532:65532\nLABEL " + d.label + "\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	docker(t, "build", "-q", "-t", d.image, dir)

	// A /24 in 172.31.224.0/20 that no network or route here is on (the
	// engine tests take 172.31.240.0/20); taken by another test between
	// the look and the create, the next one is tried.
	routes, _ := exec.Command("ip", "-4", "route").Output()
	for i := 224; i < 240; i++ {
		prefix := fmt.Sprintf("172.31.%d.", i)
		if bytes.Contains(routes, []byte(prefix)) {
			continue
		}
		out, err := exec.Command("docker", "network", "create", "--driver", "bridge",
			"--subnet", prefix+"0/24", "--gateway", prefix+"1", "--label", d.label, d.network).CombinedOutput()
		if err == nil {
			d.subnet, d.gateway = prefix, prefix+"1"
			return d
		}
		if !bytes.Contains(out, []byte("overlap")) {
			t.Fatalf("docker network create: %v: %s", err, out)
		}
	}
	t.Skip("no free /24 in 172.31.224.0/20")
	return nil
}

// docker runs the docker CLI and returns its trimmed output.
func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// start runs a labelled container on the network at the next address and
// returns that address.
func (d *dockerRig) start(t *testing.T, name string, sysctls []string, args ...string) string {
	t.Helper()
	d.next++
	ip := d.subnet + strconv.Itoa(d.next)
	cmd := []string{"run", "-d", "--name", d.id + "-" + name, "--label", d.label, "--network", d.network, "--ip", ip}
	for _, s := range sysctls {
		cmd = append(cmd, "--sysctl", s)
	}
	docker(t, append(cmd, args...)...)
	return ip
}

// result is what one measurement saw.
type result struct {
	total, failed int
	firstErr      string
	firstAfter    time.Duration // when the first connection failed
	took          time.Duration
	peak          float64 // connections/s at best over 5 s
	timeWait      int     // most sockets in TIME_WAIT seen in tierlb's namespace
	capacity      string  // tierlb's start line on the local port capacity
	failedHow     string  // a line of tierlb's log on a failed dial, if any
	local         int     // clients tierlb refused for EADDRNOTAVAIL (its metric)
	gauge         float64 // tierlb_backend_local_port_capacity for the backend
	localAfter    time.Duration
	warned        bool // tierlb warned of the capacity
}

// measure starts a tierlb container with the given sysctls in front of
// backend, puts rate connections/s through it for dur, and reads what
// tierlb said.
func (d *dockerRig) measure(t *testing.T, name string, sysctls []string, backend string, rate int, dur time.Duration) result {
	t.Helper()
	front := d.start(t, "tierlb-"+name, sysctls, d.image, "/tierlb", "run", "--docker", "false", "--access-log=false",
		"--admin-listen", "0.0.0.0:9090", "--listen", "0.0.0.0:5432", "--backend", backend+":5432", "--name", "db", "--health", "none")
	container := d.id + "-tierlb-" + name
	logs := func() string {
		out, _ := exec.Command("docker", "logs", container).CombinedOutput()
		return string(out)
	}
	var res result
	if !testkit.Within(30*time.Second, func() bool {
		res.capacity = regexp.MustCompile(`msg="local port capacity[^\n]*`).FindString(logs())
		return res.capacity != "" && strings.Contains(logs(), "msg=serving")
	}) {
		t.Fatalf("tierlb did not start:\n%s", logs())
	}
	pid := docker(t, "inspect", "-f", "{{.State.Pid}}", container)

	load := startPortLoad(d.gateway, front+":5432", rate, dur)
	last, lastAt := int64(0), time.Now()
	for !load.wait(5 * time.Second) {
		res.timeWait = max(res.timeWait, timeWaitIn(pid))
		n, now := load.total.Load(), time.Now()
		res.peak = max(res.peak, float64(n-last)/now.Sub(lastAt).Seconds())
		last, lastAt = n, now
	}
	res.timeWait = max(res.timeWait, timeWaitIn(pid))
	res.total, res.failed, res.firstErr, res.firstAfter, res.took = load.summary()
	if n := load.portsBusy.Load(); n > 0 {
		t.Logf("%d client ports were busy and skipped (the client's own, not a failure)", n)
	}
	l := logs()
	res.failedHow = regexp.MustCompile(`[^\n]*msg="out of local resources[^\n]*`).FindString(l)
	if other := regexp.MustCompile(`(?m)^[^\n]*level=(WARN|ERROR)[^\n]*$`).FindAllString(l, -1); len(other) > 0 {
		t.Logf("tierlb's warnings (%d), the first: %s", len(other), other[0])
	}
	_, res.localAfter = localRefusals(l, load.start)
	metrics := scrapeMetrics(t, front+":9090")
	res.local = int(metricValue(metrics, `tierlb_local_errors_total{errno="EADDRNOTAVAIL",service="db"}`))
	for _, prefix := range []string{"tierlb_connections_rejected_total{", "tierlb_backend_connect_errors_total{", "tierlb_local_errors_total{"} {
		for line := range strings.SplitSeq(metrics, "\n") {
			if strings.HasPrefix(line, prefix) && !strings.HasSuffix(line, " 0") {
				t.Logf("%s: %s", name, line)
			}
		}
	}
	res.gauge = metricValue(metrics, `tierlb_backend_local_port_capacity{backend="`+backend+`:5432",service="db"}`)
	res.warned = strings.Contains(l, "backend near the local port capacity")
	t.Logf("%s: %.0f/s at best over 5 s; %d of %d failed in %s, first after %s (%s); tierlb refused %d for local resources, the first after %s; %d TIME_WAIT at most; %s",
		name, res.peak, res.failed, res.total, res.took, res.firstAfter, res.firstErr, res.local, res.localAfter, res.timeWait, res.capacity)
	return res
}

// localRefusals reads tierlb's rate-limited warnings about local errors:
// how many clients it refused for them (less those of the last second,
// never logged), and when the first was, after start.
func localRefusals(logs string, start time.Time) (n int, first time.Duration) {
	re := regexp.MustCompile(`(?m)^time=(\S+) [^\n]*msg="out of local resources[^\n]* more_since_last_warning=(\d+)`)
	for i, m := range re.FindAllStringSubmatch(logs, -1) {
		more, _ := strconv.Atoi(m[2])
		n += 1 + more
		if at, err := time.Parse(time.RFC3339Nano, m[1]); i == 0 && err == nil {
			first = at.Sub(start)
		}
	}
	return n, first
}

// scrapeMetrics returns tierlb's /metrics page.
func scrapeMetrics(t *testing.T, admin string) string {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// metricValue is one series' value on a /metrics page; -1 when absent.
func metricValue(page, series string) float64 {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(page)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return -1
	}
	return v
}

// timeWaitIn counts the TCP sockets in TIME_WAIT in the network namespace
// of process pid (its /proc/PID/net/tcp*); -1 when they cannot be read.
func timeWaitIn(pid string) int {
	n := 0
	for _, f := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile("/proc/" + pid + "/net/" + f)
		if err != nil {
			return -1
		}
		for line := range bytes.SplitSeq(b, []byte("\n")) {
			if f := bytes.Fields(line); len(f) > 3 && string(f[3]) == "06" {
				n++
			}
		}
	}
	return n
}

// Client ports: the load binds each connection to the next port of this
// range itself, with SO_REUSEADDR. Its connections close first, so each
// leaves its own socket in TIME_WAIT in the host's namespace; the kernel's
// own choice of port would then run this client out of ports at 470/s
// (tcp_tw_reuse 2 reuses ports only over loopback). A port bound by the
// application is taken again over a TIME_WAIT socket whose connection had
// timestamps (tcp_twsk_unique), and PAWS keeps the old segments out; with
// 12,000 ports at 2,000/s each port comes round every 6 s. The range sits
// below the ephemeral one, away from ports the kernel hands out.
const (
	clientPortLow  = 20000
	clientPortHigh = 31999
)

// portLoad opens rate connections per second to addr from source address
// src, for dur at most and rate×dur connections at most. Each connection
// sends 8 bytes, reads them back and closes first, with a FIN.
type portLoad struct {
	src, addr   string
	start       time.Time
	done        chan struct{}
	next        atomic.Int64
	portsBusy   atomic.Int64
	total, fail atomic.Int64

	mu         sync.Mutex
	firstErr   error
	firstAfter time.Duration
	took       time.Duration
}

func startPortLoad(src, addr string, rate int, dur time.Duration) *portLoad {
	l := &portLoad{src: src, addr: addr, start: time.Now(), done: make(chan struct{})}
	count := int(float64(rate) * dur.Seconds())
	tokens := make(chan struct{}, 1024)
	// The pacer hands out tokens at rate, never more than count in all and
	// none after dur: workers that fall behind lower the rate (measured by
	// the caller), they never raise it nor stretch the time.
	go func() {
		defer close(tokens)
		stop := time.After(dur)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		sent := 0
		for sent < count {
			select {
			case <-stop:
				return
			case now := <-tick.C:
				due := min(count, int(float64(rate)*now.Sub(l.start).Seconds()))
				for ; sent < due; sent++ {
					select {
					case tokens <- struct{}{}:
					case <-stop:
						return
					}
				}
			}
		}
	}()
	var wg sync.WaitGroup
	for range 256 { // enough for 2,000/s at 100 ms a connection
		wg.Go(func() {
			for range tokens {
				l.one()
			}
		})
	}
	go func() {
		wg.Wait()
		l.mu.Lock()
		l.took = time.Since(l.start)
		l.mu.Unlock()
		close(l.done)
	}()
	return l
}

// wait reports whether the load is over, waiting up to d.
func (l *portLoad) wait(d time.Duration) bool {
	select {
	case <-l.done:
		return true
	case <-time.After(d):
		return false
	}
}

func (l *portLoad) summary() (total, failed int, firstErr string, firstAfter, took time.Duration) {
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.firstErr != nil {
		firstErr = l.firstErr.Error()
	}
	return int(l.total.Load()), int(l.fail.Load()), firstErr, l.firstAfter, l.took
}

// one makes one connection; a failure is counted with its time.
func (l *portLoad) one() {
	l.total.Add(1)
	if err := l.exchange(); err != nil {
		l.fail.Add(1)
		l.mu.Lock()
		if l.firstErr == nil {
			l.firstErr, l.firstAfter = err, time.Since(l.start)
		}
		l.mu.Unlock()
	}
}

func (l *portLoad) exchange() error {
	c, err := l.dial()
	if err != nil {
		return err
	}
	defer c.Close() // no data left unread: a FIN, not an RST
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	msg := []byte("ports!\r\n")
	if _, err := c.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err // tierlb closes a client whose backend it cannot dial
	}
	return nil
}

// dial connects from the next client port; a port some other socket
// holds is skipped.
func (l *portLoad) dial() (net.Conn, error) {
	var err error
	for range 20 {
		port := clientPortLow + int(l.next.Add(1)%(clientPortHigh-clientPortLow+1))
		d := net.Dialer{
			Timeout:   10 * time.Second,
			LocalAddr: &net.TCPAddr{IP: net.ParseIP(l.src), Port: port},
			Control: func(_, _ string, rc syscall.RawConn) error {
				var serr error
				if err := rc.Control(func(fd uintptr) {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
				}); err != nil {
					return err
				}
				return serr
			},
		}
		var c net.Conn
		if c, err = d.Dial("tcp", l.addr); err == nil {
			return c, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, err
		}
		l.portsBusy.Add(1)
	}
	return nil, err
}
