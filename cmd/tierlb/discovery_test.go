package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tierlb/tierlb/config"
	"github.com/tierlb/tierlb/internal/testkit"
)

func TestDockerWanted(t *testing.T) {
	tests := []struct {
		name       string
		enabled    string
		dockerHost string
		host       string // docker.host
		socket     bool
		want       bool
	}{
		{"true without any engine", "true", "", "", false, true},
		{"false with DOCKER_HOST and socket", "false", "tcp://127.0.0.1:2375", "", true, false},
		{"false with docker.host", "false", "", "tcp://socket-proxy:2375", false, false},
		{"auto with DOCKER_HOST", "auto", "tcp://127.0.0.1:2375", "", false, true},
		{"auto with docker.host only", "auto", "", "tcp://socket-proxy:2375", false, true},
		{"auto with the default socket", "auto", "", "", true, true},
		{"auto with neither", "auto", "", "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := environment{
				getenv: func(k string) string {
					if k == "DOCKER_HOST" {
						return tt.dockerHost
					}
					return ""
				},
				exists: func(path string) bool { return tt.socket && path == defaultDockerSocket },
			}
			got, why := dockerWanted(&config.DockerConfig{Enabled: tt.enabled, Host: tt.host}, env)
			if got != tt.want {
				t.Errorf("dockerWanted = %t (%s), want %t", got, why, tt.want)
			}
			if why == "" {
				t.Error("no reason given for the start-up log")
			}
		})
	}
}

// httpGet returns the status and body of a GET.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// waitHTTP polls url until its status is want and returns the body.
func waitHTTP(t *testing.T, url string, want int) string {
	t.Helper()
	var code int
	var body string
	if !testkit.Within(10*time.Second, func() bool {
		code, body = httpGet(t, url)
		return code == want
	}) {
		t.Fatalf("GET %s: %d %q, want %d", url, code, body, want)
	}
	return body
}

func discoveryConfig(host string, static string) string {
	return fmt.Sprintf(`admin: {listen: '127.0.0.1:0'}
shutdown: {drain_timeout: 10s}
docker: {host: '%s', resync_interval: 1s}
services:
  - {name: web, listen: '127.0.0.1:0', backends: {static: ['%s']}, health: {type: none}}
`, host, static)
}

// TestDockerEnabledDecidesWhetherTheEngineIsTouched runs the binary with an
// engine at hand: docker.enabled false must never send it a request, while
// auto (DOCKER_HOST set) talks to it, which shows the fake would notice.
func TestDockerEnabledDecidesWhetherTheEngineIsTouched(t *testing.T) {
	tests := []struct {
		enabled     string
		wantTouched bool
	}{
		{"false", false},
		{"auto", true},
	}
	for _, tt := range tests {
		t.Run(tt.enabled, func(t *testing.T) {
			engine := newFakeEngine(t)
			b := startBackend(t, "static")
			file := writeFile(t, "tierlb.yaml", discoveryConfig(engine.url, b.addr()))
			p := startBinaryEnv(t, []string{"TIERLB_DOCKER_ENABLED=" + tt.enabled, "DOCKER_HOST=" + engine.url}, "run", "--config", file)
			admin := p.WaitLog(t, `msg="admin listening" addr=(\S+)`)
			if got := waitGreeting(t, p.serviceAddr(t, "web")); got != "static" {
				t.Errorf("greeting %q, want static", got)
			}
			waitHTTP(t, "http://"+admin+"/readyz", http.StatusOK)
			// A service with static backends is ready before discovery's
			// first sync, so auto's first request may come after /readyz.
			if tt.wantTouched {
				testkit.Eventually(t, 10*time.Second, "a request to the engine", func() bool { return engine.requestCount() > 0 })
			} else if n := engine.requestCount(); n > 0 {
				t.Errorf("engine touched (%d requests), want no request with docker.enabled false", n)
			}
			if !tt.wantTouched && !strings.Contains(p.Logs(), "docker discovery off") {
				t.Error("the log does not say discovery is off")
			}
		})
	}
}

// dockerOnlyConfig is a service whose backends all come from discovery.
func dockerOnlyConfig(host string) string {
	return fmt.Sprintf(`admin: {listen: '127.0.0.1:0'}
shutdown: {drain_timeout: 10s}
docker: {host: '%s', resync_interval: 1s}
services:
  - {name: app, listen: '127.0.0.1:0', backends: {docker: {service: app}}, health: {type: none}}
`, host)
}

// waitReadyz polls /readyz until it answers code with a body containing
// want, and fails if it answers the other way first (200 where 503 is
// awaited, or the reverse).
func waitReadyz(t *testing.T, admin string, code int, want string) {
	t.Helper()
	var got int
	var body string
	if !testkit.Within(10*time.Second, func() bool {
		got, body = httpGet(t, "http://"+admin+"/readyz")
		return got != code || strings.Contains(body, want)
	}) || got != code {
		t.Fatalf("/readyz %d %q, want %d saying %q", got, body, code, want)
	}
}

// waitReady polls /readyz until it answers 200 with a plain "ready".
func waitReady(t *testing.T, admin string) {
	t.Helper()
	var code int
	var body string
	if !testkit.Within(10*time.Second, func() bool {
		code, body = httpGet(t, "http://"+admin+"/readyz")
		return code == http.StatusOK && body == "ready\n"
	}) {
		t.Fatalf("/readyz %d %q, want 200 ready", code, body)
	}
}

// TestReadyzMeansCanServe: tierlb is ready once every service can route.
// Static backends route at once, whatever discovery is doing, and /readyz
// says what discovery is waiting for; a service whose backends all come
// from Docker waits for the first sync.
func TestReadyzMeansCanServe(t *testing.T) {
	tests := []struct {
		name       string
		dockerOnly bool
		down       bool // no engine at all, rather than a slow one
		code       int
		reason     string
	}{
		{"static, engine slow", false, false, http.StatusOK, "static backends serve; docker discovery: waiting for the first docker sync"},
		{"static, engine unreachable", false, true, http.StatusOK, "static backends serve; docker discovery: docker engine at tcp://"},
		{"docker only, engine slow", true, false, http.StatusServiceUnavailable, "waiting for the first docker sync"},
		{"docker only, engine unreachable", true, true, http.StatusServiceUnavailable, "docker engine at tcp://"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			engine := newFakeEngine(t)
			release := engine.holdLists()
			t.Cleanup(release)
			host := engine.url
			if tt.down {
				host = "tcp://" + testkit.ClosedPort(t)
			}
			file := writeFile(t, "tierlb.yaml", dockerOnlyConfig(host))
			if !tt.dockerOnly {
				b := startBackend(t, "static")
				file = writeFile(t, "tierlb.yaml", discoveryConfig(host, b.addr()))
			}
			p := startBinaryEnv(t, []string{"TIERLB_DOCKER_ENABLED=true"}, "run", "--config", file)
			admin := p.WaitLog(t, `msg="admin listening" addr=(\S+)`)
			if !tt.dockerOnly {
				if got := waitGreeting(t, p.serviceAddr(t, "web")); got != "static" {
					t.Errorf("static backend not served while discovery is not ready: %q", got)
				}
			}
			waitReadyz(t, admin, tt.code, tt.reason)
			if tt.down {
				return
			}
			release()
			waitReady(t, admin)
		})
	}
}

// TestEngineOutageKeepsReadiness: once discovery has synced, an engine
// that stops answering is reported in /readyz's body and by
// tierlb_discovery_engine_up, but tierlb stays ready and serves the last
// known backends; when the engine is back, so is the plain answer.
func TestEngineOutageKeepsReadiness(t *testing.T) {
	engine := newFakeEngine(t)
	db := startBackend(t, "db")
	_, dbPort, _ := net.SplitHostPort(db.addr())
	engine.start(strings.Repeat("a", 64), "app-1", map[string]string{"tierlb.service": "app", "tierlb.port": dbPort})
	p := startBinaryEnv(t, []string{"TIERLB_DOCKER_ENABLED=true"}, "run", "--config", writeFile(t, "tierlb.yaml", dockerOnlyConfig(engine.url)))
	admin := p.WaitLog(t, `msg="admin listening" addr=(\S+)`)
	addr := p.serviceAddr(t, "app")
	if body := waitHTTP(t, "http://"+admin+"/readyz", http.StatusOK); body != "ready\n" {
		t.Errorf("/readyz with the engine up: %q, want ready", body)
	}
	if got := waitGreeting(t, addr); got != "db" {
		t.Fatalf("greeting %q, want db", got)
	}
	const up = `tierlb_discovery_engine_up{provider="docker"}`
	if got := metric(t, admin, up); got != "1" {
		t.Errorf("%s = %s with the engine up", up, got)
	}

	repair := engine.breakDown()
	t.Cleanup(repair)
	waitReadyz(t, admin, http.StatusOK, "unreachable since")
	if got := metric(t, admin, up); got != "0" {
		t.Errorf("%s = %s during the outage", up, got)
	}
	if got, err := greet(t, addr); got != "db" {
		t.Errorf("during the outage the last known backend does not serve: %q, %v", got, err)
	}

	repair()
	waitReady(t, admin)
	testkit.Eventually(t, 10*time.Second, "the engine gauge back at 1", func() bool { return metric(t, admin, up) == "1" })
}

// TestLabelDeclaredService follows a service that only containers declare:
// it starts listening when the first replica appears (held until its tcp
// check passes), replicas that disagree are reported, a declaration that
// is not a valid service is logged with its container and label, and the
// service stops listening and drains when its last replica is gone.
func TestLabelDeclaredService(t *testing.T) {
	engine := newFakeEngine(t)
	static, db := startBackend(t, "static"), startBackend(t, "db")
	_, dbPort, _ := net.SplitHostPort(db.addr())
	listen := testkit.ClosedPort(t)
	file := writeFile(t, "tierlb.yaml", discoveryConfig(engine.url, static.addr()))
	p := startBinaryEnv(t, []string{"TIERLB_DOCKER_ENABLED=true"}, "run", "--config", file)
	admin := p.WaitLog(t, `msg="admin listening" addr=(\S+)`)
	waitHTTP(t, "http://"+admin+"/readyz", http.StatusOK)

	labels := map[string]string{
		"tierlb.service": "db", "tierlb.listen": listen, "tierlb.port": dbPort,
		"tierlb.health.type": "tcp", "tierlb.health.interval": "200ms", "tierlb.retries": "0",
	}
	engine.start(strings.Repeat("a", 64), "db-1", labels)
	if got := p.serviceAddr(t, "db"); got != listen {
		t.Errorf("db listens on %s, want %s", got, listen)
	}
	if got := waitGreeting(t, listen); got != "db" {
		t.Errorf("greeting %q, want db", got)
	}

	// A younger replica that wants another balance policy loses, loudly.
	younger := map[string]string{"tierlb.balance": "leastconn"}
	for k, v := range labels {
		younger[k] = v
	}
	engine.start(strings.Repeat("b", 64), "db-2", younger)
	p.WaitLog(t, `replicas disagree on a label-declared service.* service=db container=db-1 conflicts="db-2 disagrees`)

	// A declaration the config rules refuse: send-expect with nothing to
	// send or expect.
	engine.start(strings.Repeat("c", 64), "bad-1", map[string]string{
		"tierlb.service": "bad", "tierlb.listen": testkit.ClosedPort(t), "tierlb.port": dbPort, "tierlb.health.type": "send-expect",
	})
	p.WaitLog(t, `msg="label-declared service not started" service=bad container=bad-1 err=".*label tierlb.health.expect: a send-expect check needs send`)

	// A name the config already has is the config's.
	engine.start(strings.Repeat("d", 64), "web-1", map[string]string{
		"tierlb.service": "web", "tierlb.listen": testkit.ClosedPort(t), "tierlb.port": dbPort,
	})
	var body string
	if !testkit.Within(10*time.Second, func() bool {
		_, body = httpGet(t, "http://"+admin+"/api/v1/explain")
		return strings.Contains(body, "listen ignored: service web is declared in the config") && strings.Contains(body, "service web is configured with static backends only")
	}) {
		t.Fatalf("explain does not say web-1's tierlb.listen is ignored: %s", body)
	}

	open, r := dialLine(t, listen)
	engine.remove(strings.Repeat("a", 64))
	engine.remove(strings.Repeat("b", 64))
	p.WaitLog(t, `msg="service removed: draining" service=db`)
	if got, err := greet(t, listen); err == nil || got != "" {
		t.Errorf("db still accepts after its last replica is gone (greeting %q, err %v)", got, err)
	}
	if err := echo(open, r, "still here"); err != nil {
		t.Errorf("open connection while db drains: %v", err)
	}
	open.Close()
	p.WaitLog(t, `msg="service drained" service=db`)
	if strings.Contains(p.Logs(), "service=bad listen=") {
		t.Error("the invalid declaration was started")
	}

	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.Wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0", code)
	}
}
