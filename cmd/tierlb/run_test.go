package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitGreeting polls addr until a backend greets (health checks may not have
// run yet) and returns the greeting.
func waitGreeting(t *testing.T, addr string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		name, err := greet(t, addr)
		if err == nil && name != "" {
			return name
		}
		if time.Now().After(deadline) {
			t.Fatalf("no greeting through %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
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
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 10*time.Second); code != 0 {
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
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.waitLog(t, `msg=draining`)
	// The listener closes first: new connections are refused...
	deadline := time.Now().Add(5 * time.Second)
	for {
		nc, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		nc.Close()
		if time.Now().After(deadline) {
			t.Fatal("listener still accepting during the drain")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// ... while the open one keeps working.
	if err := echo(c, r, "still here"); err != nil {
		t.Fatalf("open connection during drain: %v", err)
	}
	c.Close()
	if code := p.wait(t, 8*time.Second); code != 0 {
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
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 8*time.Second); code != 0 {
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
	if code := p.wait(t, 10*time.Second); code != exitRuntime {
		t.Errorf("exit %d, want %d", code, exitRuntime)
	}
	want := "service quick cannot listen on " + taken.Addr().String()
	if !strings.Contains(p.logs(), want) {
		t.Errorf("log lacks %q:\n%s", want, p.logs())
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
	if code := p.wait(t, 10*time.Second); code != exitRuntime {
		t.Errorf("exit %d, want %d", code, exitRuntime)
	}
}

// reloadConfig writes a config with the given services (name → listen and
// backend) and the admin API on a free port.
func reloadConfig(services ...[3]string) string {
	var sb strings.Builder
	sb.WriteString("admin: {listen: '127.0.0.1:0'}\nshutdown: {drain_timeout: 10s}\nservices:\n")
	for _, s := range services {
		fmt.Fprintf(&sb, "  - {name: %s, listen: '%s', backends: {static: ['%s']}}\n", s[0], s[1], s[2])
	}
	return sb.String()
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

func TestSIGHUPReload(t *testing.T) {
	ba, bb := startBackend(t, "a"), startBackend(t, "b")
	file := writeFile(t, "tierlb.yaml", reloadConfig([3]string{"a", "127.0.0.1:0", ba.addr()}))
	p := startBinary(t, "run", "--config", file)
	addrA := p.serviceAddr(t, "a")
	admin := p.waitLog(t, `msg="admin listening" addr=(\S+)`)
	waitGreeting(t, addrA)
	openA, readA := dialLine(t, addrA)

	// Add b, remove a: a stops listening at once and its open connection
	// drains in the background.
	if err := os.WriteFile(file, []byte(reloadConfig([3]string{"b", "127.0.0.1:0", bb.addr()})), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	addrB := p.serviceAddr(t, "b")
	if got := waitGreeting(t, addrB); got != "b" {
		t.Errorf("added service answered from %q", got)
	}
	p.waitLog(t, `msg="service removed: draining" service=a`)
	if _, err := net.DialTimeout("tcp", addrA, time.Second); err == nil {
		t.Error("removed service still accepts")
	}
	if err := echo(openA, readA, "draining"); err != nil {
		t.Errorf("open connection of the removed service: %v", err)
	}
	openA.Close()
	p.waitLog(t, `msg="service drained" service=a`)
	if got := metric(t, admin, `tierlb_config_reloads_total{result="ok"}`); got != "1" {
		t.Errorf("reloads ok = %s, want 1", got)
	}

	// A bad file is rejected with every error, and b keeps serving.
	if err := os.WriteFile(file, []byte("services:\n  - {name: b, listen: 'x', retries: -1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.waitLog(t, `config reload rejected`)
	for _, want := range []string{`services\[0\].listen`, `services\[0\].retries: -1 is negative`, `services\[0\].backends: no static backends`} {
		p.waitLog(t, want)
	}
	if got, err := greet(t, addrB); err != nil || got != "b" {
		t.Errorf("after a bad reload: %q, %v", got, err)
	}
	if got := metric(t, admin, `tierlb_config_reloads_total{result="error"}`); got != "1" {
		t.Errorf("reloads error = %s, want 1", got)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
}

func TestWatchReloadsChangedSettings(t *testing.T) {
	ba, bb := startBackend(t, "a"), startBackend(t, "b")
	file := writeFile(t, "tierlb.yaml", reloadConfig([3]string{"svc", "127.0.0.1:0", ba.addr()}))
	p := startBinary(t, "run", "--config", file, "--watch-config", "50ms")
	addr := p.serviceAddr(t, "svc")
	if got := waitGreeting(t, addr); got != "a" {
		t.Fatalf("greeting %q, want a", got)
	}
	open, r := dialLine(t, addr)

	// Same listen address, another backend and policy: the listener stays,
	// new connections go to b, the open one stays on a.
	next := strings.Replace(reloadConfig([3]string{"svc", "127.0.0.1:0", bb.addr()}), "name: svc,", "name: svc, balance: leastconn,", 1)
	if err := os.WriteFile(file, []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	p.waitLog(t, `msg="service reconfigured" service=svc`)
	p.waitLog(t, `msg="config reloaded" trigger="file changed"`)
	if got := waitGreetingFrom(t, addr, "b"); got != "b" {
		t.Errorf("after reload: %q, want b", got)
	}
	if err := echo(open, r, "kept"); err != nil {
		t.Errorf("open connection across the reload: %v", err)
	}
	if n := strings.Count(p.logs(), "msg=serving service=svc"); n != 1 {
		t.Errorf("listener restarted %d times; a reconfigure must keep it", n-1)
	}
}

// waitGreetingFrom polls until backend want greets through addr (the new
// backend may still be awaiting its first health check).
func waitGreetingFrom(t *testing.T, addr, want string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := greet(t, addr)
		if got == want || time.Now().After(deadline) {
			if err != nil {
				t.Logf("last error: %v", err)
			}
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
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
			addr := freePort(t)
			p := startBinary(t, "run", "--listen", addr, "--backend", b.addr(), "--admin-listen", "",
				"--log-level", tt.level, "--access-log="+tt.access)
			waitGreeting(t, addr)
			if _, err := greet(t, addr); err != nil {
				t.Fatal(err)
			}
			if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code := p.wait(t, 10*time.Second); code != 0 {
				t.Errorf("exit %d after SIGTERM, want 0", code)
			}
			logs := p.logs()
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
func TestReloadRotatesAdminToken(t *testing.T) {
	b := startBackend(t, "b")
	config := func(token string) string {
		return strings.Replace(reloadConfig([3]string{"a", "127.0.0.1:0", b.addr()}),
			"admin: {listen: '127.0.0.1:0'}", "admin: {listen: '127.0.0.1:0', token: '"+token+"'}", 1)
	}
	file := writeFile(t, "tierlb.yaml", config("old-token"))
	p := startBinary(t, "run", "--config", file)
	admin := p.waitLog(t, `msg="admin listening" addr=(\S+)`)
	post := func(token, action string) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, "http://"+admin+"/api/v1/services/a/backends/"+b.addr()+"/"+action, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("old-token", "drain"); code != http.StatusOK {
		t.Fatalf("POST with the configured token: %d", code)
	}
	if err := os.WriteFile(file, []byte(config("new-token")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.waitLog(t, `msg="admin token changed" .*set=true`)
	if code := post("old-token", "ready"); code != http.StatusUnauthorized {
		t.Errorf("POST with the rotated-out token: %d, want 401", code)
	}
	if code := post("new-token", "ready"); code != http.StatusOK {
		t.Errorf("POST with the new token: %d, want 200", code)
	}
	if strings.Contains(p.logs(), "change at the next restart") {
		t.Errorf("a token change asked for a restart:\n%s", p.logs())
	}
}

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
	admin := p.waitLog(t, `msg="admin listening" addr=(\S+)`)

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
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if metric(t, admin, `tierlb_connection_duration_seconds_count{service="app"}`) == strconv.Itoa(n) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the connections' ends were not recorded within 5s")
		}
	}
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
