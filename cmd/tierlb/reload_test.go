package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tierlb/tierlb/internal/testkit"
)

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

func TestSIGHUPReload(t *testing.T) {
	ba, bb := startBackend(t, "a"), startBackend(t, "b")
	file := writeFile(t, "tierlb.yaml", reloadConfig([3]string{"a", "127.0.0.1:0", ba.addr()}))
	p := startBinary(t, "run", "--config", file)
	addrA := p.serviceAddr(t, "a")
	admin := p.WaitLog(t, `msg="admin listening" addr=(\S+)`)
	waitGreeting(t, addrA)
	openA, readA := dialLine(t, addrA)

	// Add b, remove a: a stops listening at once and its open connection
	// drains in the background.
	if err := os.WriteFile(file, []byte(reloadConfig([3]string{"b", "127.0.0.1:0", bb.addr()})), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	addrB := p.serviceAddr(t, "b")
	if got := waitGreeting(t, addrB); got != "b" {
		t.Errorf("added service answered from %q", got)
	}
	p.WaitLog(t, `msg="service removed: draining" service=a`)
	if _, err := net.DialTimeout("tcp", addrA, time.Second); err == nil {
		t.Error("removed service still accepts")
	}
	if err := echo(openA, readA, "draining"); err != nil {
		t.Errorf("open connection of the removed service: %v", err)
	}
	openA.Close()
	p.WaitLog(t, `msg="service drained" service=a`)
	if got := metric(t, admin, `tierlb_config_reloads_total{result="ok"}`); got != "1" {
		t.Errorf("reloads ok = %s, want 1", got)
	}

	// A bad file is rejected with every error, and b keeps serving.
	if err := os.WriteFile(file, []byte("services:\n  - {name: b, listen: 'x', retries: -1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.WaitLog(t, `config reload rejected`)
	for _, want := range []string{`services\[0\].listen`, `services\[0\].retries: -1 is negative`, `services\[0\].backends: no static backends`} {
		p.WaitLog(t, want)
	}
	if got, err := greet(t, addrB); err != nil || got != "b" {
		t.Errorf("after a bad reload: %q, %v", got, err)
	}
	if got := metric(t, admin, `tierlb_config_reloads_total{result="error"}`); got != "1" {
		t.Errorf("reloads error = %s, want 1", got)
	}
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.Wait(t, 10*time.Second); code != 0 {
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
	replaceFile(t, file, next)
	p.WaitLog(t, `msg="service reconfigured" service=svc`)
	p.WaitLog(t, `msg="config reloaded" trigger="file changed"`)
	if got := waitGreetingFrom(t, addr, "b"); got != "b" {
		t.Errorf("after reload: %q, want b", got)
	}
	if err := echo(open, r, "kept"); err != nil {
		t.Errorf("open connection across the reload: %v", err)
	}
	if n := strings.Count(p.Logs(), "msg=serving service=svc"); n != 1 {
		t.Errorf("listener restarted %d times; a reconfigure must keep it", n-1)
	}
}

// waitGreetingFrom polls until backend want greets through addr (the new
// backend may still be awaiting its first health check).
func waitGreetingFrom(t *testing.T, addr, want string) string {
	t.Helper()
	var got string
	var err error
	if !testkit.Within(10*time.Second, func() bool {
		got, err = greet(t, addr)
		return got == want
	}) && err != nil {
		t.Logf("last error: %v", err)
	}
	return got
}

func TestReloadRotatesAdminToken(t *testing.T) {
	b := startBackend(t, "b")
	config := func(token string) string {
		return strings.Replace(reloadConfig([3]string{"a", "127.0.0.1:0", b.addr()}),
			"admin: {listen: '127.0.0.1:0'}", "admin: {listen: '127.0.0.1:0', token: '"+token+"'}", 1)
	}
	file := writeFile(t, "tierlb.yaml", config("old-token"))
	p := startBinary(t, "run", "--config", file)
	admin := p.WaitLog(t, `msg="admin listening" addr=(\S+)`)
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
	if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.WaitLog(t, `msg="admin token changed" .*set=true`)
	if code := post("old-token", "ready"); code != http.StatusUnauthorized {
		t.Errorf("POST with the rotated-out token: %d, want 401", code)
	}
	if code := post("new-token", "ready"); code != http.StatusOK {
		t.Errorf("POST with the new token: %d, want 200", code)
	}
	if strings.Contains(p.Logs(), "change at the next restart") {
		t.Errorf("a token change asked for a restart:\n%s", p.Logs())
	}
}

// TestReloadRefusesTooLargeFile: a config file over the size limit is
// refused without being parsed, by the watch (once, not every tick) and by
// SIGHUP, and the running config stays; a good file then reloads.
func TestReloadRefusesTooLargeFile(t *testing.T) {
	ba, bb := startBackend(t, "a"), startBackend(t, "b")
	good := reloadConfig([3]string{"a", "127.0.0.1:0", ba.addr()})
	file := writeFile(t, "tierlb.yaml", good)
	p := startBinary(t, "run", "--config", file, "--watch-config", "20ms")
	addr := p.serviceAddr(t, "a")
	admin := p.WaitLog(t, `msg="admin listening" addr=(\S+)`)
	waitGreeting(t, addr)

	big := good + "# " + strings.Repeat("x", 4<<20) + "\n"
	replaceFile(t, file, big)
	const tooLarge = `msg="config problem".*tierlb.yaml: larger than the 4 MiB limit for a config file`
	p.WaitLog(t, tooLarge)
	if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "the SIGHUP's refusal", func() bool {
		return len(regexp.MustCompile(`trigger=SIGHUP.*larger than the 4 MiB limit`).FindAllString(p.Logs(), -1)) == 1
	})
	if n := len(regexp.MustCompile(tooLarge).FindAllString(p.Logs(), -1)); n != 2 {
		t.Errorf("the too-large file was reported %d times, want twice (the watch once, SIGHUP once):\n%s", n, p.Logs())
	}
	if got := metric(t, admin, `tierlb_config_reloads_total{result="error"}`); got != "2" {
		t.Errorf("reloads error = %s, want 2", got)
	}
	if got, err := greet(t, addr); err != nil || got != "a" {
		t.Errorf("after the refused reloads: %q, %v", got, err)
	}

	replaceFile(t, file, reloadConfig([3]string{"a", "127.0.0.1:0", bb.addr()}))
	p.WaitLog(t, `msg="config reloaded" trigger="file changed"`)
	if got := waitGreetingFrom(t, addr, "b"); got != "b" {
		t.Errorf("after the good file: %q, want b", got)
	}
}

// replaceFile swaps in new content at once, as editors and deploy tools
// do, so the watch never sees the file half written.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
