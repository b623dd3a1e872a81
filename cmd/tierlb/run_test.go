package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tierlb/tierlb/internal/testkit"
)

// waitGreeting polls addr until a backend greets (health checks may not have
// run yet) and returns the greeting.
func waitGreeting(t *testing.T, addr string) string {
	t.Helper()
	var name string
	var err error
	if !testkit.Within(10*time.Second, func() bool {
		name, err = greet(t, addr)
		return err == nil && name != ""
	}) {
		t.Fatalf("no greeting through %s: %v", addr, err)
	}
	return name
}

func TestQuickModeServesTraffic(t *testing.T) {
	b1, b2 := startBackend(t, "b1"), startBackend(t, "b2")
	p := startBinary(t, "run", "--listen", "127.0.0.1:0", "--backend", b1.addr()+","+b2.addr(), "--admin-listen", "")
	addr := p.serviceAddr(t, "quick")
	waitGreeting(t, addr)
	// Round robin over two healthy backends: any 20 consecutive
	// connections split 10/10.
	counts := map[string]int{}
	for range 20 {
		name, err := greet(t, addr)
		if err != nil {
			t.Fatal(err)
		}
		counts[name]++
	}
	if counts["b1"] != 10 || counts["b2"] != 10 {
		t.Errorf("split %v, want 10 each", counts)
	}
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.Wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0", code)
	}
}

// dialLine opens a connection through tierlb and reads the greeting.
func dialLine(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(c)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatalf("greeting: %v", err)
	}
	return c, r
}

// echo sends msg and expects it back.
func echo(c net.Conn, r *bufio.Reader, msg string) error {
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		return err
	}
	got, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(got) != msg {
		return fmt.Errorf("echo %q, want %q", got, msg)
	}
	return nil
}

func TestSIGTERMDrainsOpenConnection(t *testing.T) {
	b := startBackend(t, "b1")
	p := startBinary(t, "run", "--listen", "127.0.0.1:0", "--backend", b.addr(), "--admin-listen", "", "--drain-timeout", "10s")
	addr := p.serviceAddr(t, "quick")
	waitGreeting(t, addr)
	c, r := dialLine(t, addr)

	start := time.Now()
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.WaitLog(t, `msg=draining`)
	// The listener closes first: new connections are refused...
	testkit.Eventually(t, 5*time.Second, "the listener to close at the drain", func() bool {
		nc, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return true
		}
		nc.Close()
		return false
	})
	// ... while the open one keeps working.
	if err := echo(c, r, "still here"); err != nil {
		t.Fatalf("open connection during drain: %v", err)
	}
	c.Close()
	if code := p.Wait(t, 8*time.Second); code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("exit took %v: the drain waited although the connection had finished", took)
	}
}

func TestSIGTERMCutsAtDrainTimeout(t *testing.T) {
	b := startBackend(t, "b1")
	p := startBinary(t, "run", "--listen", "127.0.0.1:0", "--backend", b.addr(), "--admin-listen", "", "--drain-timeout", "300ms")
	addr := p.serviceAddr(t, "quick")
	waitGreeting(t, addr)
	c, r := dialLine(t, addr)
	start := time.Now()
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.Wait(t, 8*time.Second); code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("exited after %v, before drain_timeout", took)
	}
	if _, err := r.ReadString('\n'); err == nil {
		t.Error("connection still open after the drain timeout")
	}
	_ = c
}

func TestCannotBindExits2(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { taken.Close() })
	b := startBackend(t, "b1")
	p := startBinary(t, "run", "--listen", taken.Addr().String(), "--backend", b.addr(), "--admin-listen", "")
	if code := p.Wait(t, 10*time.Second); code != exitRuntime {
		t.Errorf("exit %d, want %d", code, exitRuntime)
	}
	want := "service quick cannot listen on " + taken.Addr().String()
	if !strings.Contains(p.Logs(), want) {
		t.Errorf("log lacks %q:\n%s", want, p.Logs())
	}
}

func TestAdminCannotBindExits2(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { taken.Close() })
	b := startBackend(t, "b1")
	p := startBinary(t, "run", "--listen", "127.0.0.1:0", "--backend", b.addr(), "--admin-listen", taken.Addr().String())
	if code := p.Wait(t, 10*time.Second); code != exitRuntime {
		t.Errorf("exit %d, want %d", code, exitRuntime)
	}
}

func metric(t *testing.T, admin, name string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(scrape(t, admin))
	if m == nil {
		t.Fatalf("no %s in /metrics", name)
	}
	return m[1]
}

// scrape returns the admin listener's /metrics page.
func scrape(t *testing.T, admin string) string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// metricLines returns the /metrics lines of one metric name.
func metricLines(t *testing.T, admin, name string) string {
	t.Helper()
	return strings.Join(regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(name)+`\{.*$`).FindAllString(scrape(t, admin), -1), "\n")
}

// log.level governs the operational messages; log.access asks for one line
// per connection, which a quieter level must not silence.
func TestAccessLogWhateverTheLevel(t *testing.T) {
	b := startBackend(t, "b1")
	for _, tt := range []struct {
		level, access string
		want          bool
	}{
		{"warn", "true", true},
		{"error", "true", true},
		{"info", "false", false},
	} {
		t.Run(tt.level+"/access="+tt.access, func(t *testing.T) {
			addr := testkit.ClosedPort(t)
			p := startBinary(t, "run", "--listen", addr, "--backend", b.addr(), "--admin-listen", "",
				"--log-level", tt.level, "--access-log="+tt.access)
			waitGreeting(t, addr)
			if _, err := greet(t, addr); err != nil {
				t.Fatal(err)
			}
			if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code := p.Wait(t, 10*time.Second); code != 0 {
				t.Errorf("exit %d after SIGTERM, want 0", code)
			}
			logs := p.Logs()
			got := regexp.MustCompile(`level=INFO msg=connection service=quick client=127\.0\.0\.1:\d+ backend=` +
				regexp.QuoteMeta(b.addr()) + ` bytes_to_backend=\d+ bytes_to_client=\d+ duration=\S+ end=\S+`).MatchString(logs)
			if got != tt.want {
				t.Errorf("access line logged = %t, want %t; log:\n%s", got, tt.want, logs)
			}
			if tt.level != "info" && strings.Contains(logs, "msg=serving") {
				t.Errorf("log.level %s let an operational info line through:\n%s", tt.level, logs)
			}
		})
	}
}

// A reload rotates admin.token without a restart: the old token stops
// working at once and the new one works.
// After N connections with known payloads, /metrics counts exactly N and
// exactly the bytes that moved, and the gauges are back at zero.
func TestMetricsCountExactly(t *testing.T) {
	b1, b2 := startBackend(t, "b1"), startBackend(t, "b2")
	file := writeFile(t, "tierlb.yaml", fmt.Sprintf(`admin: {listen: '127.0.0.1:0'}
log: {access: false}
services:
  - name: app
    listen: 127.0.0.1:0
    health: {type: none}
    backends: {static: ['%s', '%s']}
`, b1.addr(), b2.addr()))
	p := startBinary(t, "run", "--config", file)
	addr := p.serviceAddr(t, "app")
	admin := p.WaitLog(t, `msg="admin listening" addr=(\S+)`)

	const n = 20
	var toBackend, toClient int64
	for i := range n {
		payload := bytes.Repeat([]byte{byte('a' + i)}, 1000*(i+1)+i)
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		go func() {
			_, _ = c.Write(payload)
			_ = c.(*net.TCPConn).CloseWrite()
		}()
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		greeting, echo, _ := bytes.Cut(got, []byte("\n"))
		if !bytes.Equal(echo, payload) {
			t.Fatalf("connection %d: echo of %d bytes came back as %d", i, len(payload), len(echo))
		}
		toBackend += int64(len(payload))
		toClient += int64(len(greeting) + 1 + len(echo))
	}

	label := func(b *backend) string { return `backend="` + b.addr() + `",` }
	// Counters are settled when the last connection's close is recorded.
	testkit.Eventually(t, 5*time.Second, "the connections' ends to be recorded", func() bool {
		return metric(t, admin, `tierlb_connection_duration_seconds_count{service="app"}`) == strconv.Itoa(n)
	})
	for _, b := range []*backend{b1, b2} {
		if got := metric(t, admin, `tierlb_backend_connections_active{`+label(b)+`service="app"}`); got != "0" {
			t.Errorf("active connections to %s = %s after every client closed", b.addr(), got)
		}
	}
	want := map[string]int64{
		`tierlb_connections_accepted_total{service="app"}`:                                     n,
		`tierlb_connection_duration_seconds_count{service="app"}`:                              n,
		`tierlb_backend_connect_duration_seconds_count{service="app"}`:                         n,
		`tierlb_backend_connections_total{` + label(b1) + `service="app"}`:                     n / 2,
		`tierlb_backend_connections_total{` + label(b2) + `service="app"}`:                     n / 2,
		`tierlb_connections_rejected_total{reason="no_backend",service="app"}`:                 0,
		`tierlb_backend_connect_errors_total{` + label(b1) + `reason="refused",service="app"}`: 0,
	}
	for name, v := range want {
		if got := metric(t, admin, name); got != strconv.FormatInt(v, 10) {
			t.Errorf("%s = %s, want %d", name, got, v)
		}
	}
	sum := func(direction string) int64 {
		var total int64
		for _, b := range []*backend{b1, b2} {
			v, err := strconv.ParseInt(metric(t, admin, `tierlb_backend_bytes_total{`+label(b)+`direction="`+direction+`",service="app"}`), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			total += v
		}
		return total
	}
	if got := sum("to_backend"); got != toBackend {
		t.Errorf("bytes to backends = %d, want %d", got, toBackend)
	}
	if got := sum("to_client"); got != toClient {
		t.Errorf("bytes to clients = %d, want %d", got, toClient)
	}
}
