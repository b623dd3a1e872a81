package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

const minimalYAML = `
services:
  - name: app
    listen: 127.0.0.1:8080
    backends:
      static: ["127.0.0.1:9001"]
`

// writeFile writes content to name in a fresh temp dir and returns the path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// load parses a config file of the given name and content.
func load(t *testing.T, name, content string) (*Config, error) {
	t.Helper()
	return Load(Source{File: writeFile(t, name, content)})
}

// wantProblem loads content and fails the test unless one of the problems
// it reports starts with want.
func wantProblem(t *testing.T, content, want string) {
	t.Helper()
	_, err := load(t, "c.yaml", content)
	if err == nil {
		t.Fatal("the config loaded")
	}
	for _, p := range Problems(err) {
		if strings.HasPrefix(p.Error(), want) {
			return
		}
	}
	t.Errorf("no problem starting with %q in:\n%v", want, err)
}

func TestDefaultsFillEveryKey(t *testing.T) {
	cfg, err := load(t, "c.yaml", minimalYAML)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Admin:    AdminConfig{Listen: "127.0.0.1:9090"},
		Log:      LogConfig{Level: "info", Format: "text", Access: true},
		Shutdown: ShutdownConfig{DrainTimeout: 30 * time.Second},
		Docker: DockerConfig{Enabled: "auto", LabelPrefix: "tierlb", Networks: []string{},
			ResyncInterval: 30 * time.Second, LabelServices: true},
	}
	if cfg.Admin != want.Admin || cfg.Log != want.Log || cfg.Shutdown != want.Shutdown || cfg.ConfigWatch != 0 {
		t.Errorf("top level = %+v %+v %+v, want %+v %+v %+v", cfg.Admin, cfg.Log, cfg.Shutdown, want.Admin, want.Log, want.Shutdown)
	}
	if d := cfg.Docker; d.Enabled != "auto" || d.LabelPrefix != "tierlb" || d.ResyncInterval != 30*time.Second || !d.LabelServices || d.ExposedByDefault || len(d.Networks) != 0 {
		t.Errorf("docker = %+v", d)
	}
	s := cfg.Services[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"balance", s.Balance, "roundrobin"},
		{"static", s.Backends.Static[0], StaticBackend{Address: "127.0.0.1:9001", Weight: 1}},
		{"docker", s.Backends.Docker == nil, true},
		{"health.type", s.Health.Type, "tcp"},
		{"health.interval", s.Health.Interval, 2 * time.Second},
		{"health.timeout", s.Health.Timeout, time.Second},
		{"health.rise", s.Health.Rise, 2},
		{"health.fall", s.Health.Fall, 3},
		{"health.http", s.Health.HTTP, HTTPCheck{Path: "/healthz", ExpectStatus: "200-399"}},
		{"health.passive", s.Health.Passive, PassiveCheck{MaxFails: 3, FailTimeout: 10 * time.Second}},
		{"slow_start", s.SlowStart, time.Duration(0)},
		{"timeouts", s.Timeouts, TimeoutsConfig{Connect: 2 * time.Second, Idle: time.Hour, HalfClose: 30 * time.Second, ClientHello: 5 * time.Second, FirstData: 10 * time.Second}},
		{"sni", len(s.SNI), 0},
		{"max_conns_per_client", s.MaxConnsPerClient, 0},
		{"defer_dial", s.DeferDial, false},
		{"retries", s.Retries, 2},
		{"on_backend_down", s.OnBackendDown, "keep"},
		{"proxy_protocol", s.ProxyProtocol, ""},
		{"zero_copy", s.ZeroCopy, "auto"},
		{"reuse_port", s.ReusePort, false},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("services[0].%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestExplicitZeroBeatsServiceDefault(t *testing.T) {
	cfg, err := load(t, "c.yaml", minimalYAML+"    retries: 0\n    health: {passive: {max_fails: 0}}\n")
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Services[0]
	if s.Retries != 0 || s.Health.Passive.MaxFails != 0 || s.Health.Rise != 2 {
		t.Errorf("retries=%d max_fails=%d rise=%d, want 0, 0 and the default 2", s.Retries, s.Health.Passive.MaxFails, s.Health.Rise)
	}
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, "c.yaml", minimalYAML+`
log: {level: warn, format: json}
admin: {listen: "127.0.0.1:7000", token: from-file}
shutdown: {drain_timeout: 5s}
`)
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.String("log-level", "", "")
	if err := fs.Parse([]string{"--log-level=error"}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TIERLB_LOG_LEVEL", "debug")      // loses to the flag
	t.Setenv("TIERLB_LOG_FORMAT", "text")      // beats the file
	t.Setenv("TIERLB_ADMIN_LISTEN", "")        // empty counts: disables admin
	t.Setenv("TIERLB_DOCKER_NETWORKS", "b, a") // list from env
	t.Setenv("TIERLB_DOCKER_ENABLED", "false") // default overridden
	t.Setenv("TIERLB_SHUTDOWN_DRAIN_TIMEOUT", "7s")
	cfg, err := Load(Source{File: file, Flags: map[string]*pflag.Flag{"log.level": fs.Lookup("log-level")}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{"flag beats env and file", cfg.Log.Level, "error"},
		{"env beats file", cfg.Log.Format, "text"},
		{"empty env beats file", cfg.Admin.Listen, ""},
		{"file beats default", cfg.Admin.Token, "from-file"},
		{"env duration", cfg.Shutdown.DrainTimeout, 7 * time.Second},
		{"env default key", cfg.Docker.Enabled, "false"},
		{"default stays", cfg.Docker.LabelPrefix, "tierlb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
	if got := strings.Join(cfg.Docker.Networks, ","); got != "b,a" {
		t.Errorf("docker.networks = %q, want b,a", got)
	}
}

func TestFormats(t *testing.T) {
	tests := []struct{ name, file, content string }{
		{"yaml", "c.yaml", `
log: {level: debug}
services:
  - name: app
    listen: 127.0.0.1:8080
    timeouts: {connect: 3s}
    backends: {static: ["127.0.0.1:9001", {address: "127.0.0.1:9002", weight: 2, priority: 1}], docker: {selector: {Com.Example: x}}}
`},
		{"yml", "c.yml", `
log: {level: debug}
services: [{name: app, listen: "127.0.0.1:8080", timeouts: {connect: 3s},
  backends: {static: ["127.0.0.1:9001", {address: "127.0.0.1:9002", weight: 2, priority: 1}], docker: {selector: {Com.Example: x}}}}]
`},
		{"toml", "c.toml", `
[log]
level = "debug"
[[services]]
name = "app"
listen = "127.0.0.1:8080"
timeouts = { connect = "3s" }
[services.backends]
static = ["127.0.0.1:9001", { address = "127.0.0.1:9002", weight = 2, priority = 1 }]
docker = { selector = { "Com.Example" = "x" } }
`},
		{"json", "c.json", `{"log": {"level": "debug"}, "services": [{"name": "app", "listen": "127.0.0.1:8080",
  "timeouts": {"connect": "3s"},
  "backends": {"static": ["127.0.0.1:9001", {"address": "127.0.0.1:9002", "weight": 2, "priority": 1}],
               "docker": {"selector": {"Com.Example": "x"}}}}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := load(t, tt.file, tt.content)
			if err != nil {
				t.Fatal(err)
			}
			s := cfg.Services[0]
			want := []StaticBackend{{"127.0.0.1:9001", 1, 0}, {"127.0.0.1:9002", 2, 1}}
			if cfg.Log.Level != "debug" || s.Timeouts.Connect != 3*time.Second || len(s.Backends.Static) != 2 ||
				s.Backends.Static[0] != want[0] || s.Backends.Static[1] != want[1] {
				t.Errorf("got level %s, connect %v, static %+v", cfg.Log.Level, s.Timeouts.Connect, s.Backends.Static)
			}
			// Label names are case-sensitive and may contain dots.
			if s.Backends.Docker == nil || s.Backends.Docker.Selector["Com.Example"] != "x" {
				t.Errorf("selector = %+v, want {Com.Example: x}", s.Backends.Docker)
			}
		})
	}
}

func TestUnknownKeys(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"top level", "tiemouts: 1\n", "tiemouts: unknown key"},
		{"section", "admin: {tokn: x}\n", "admin.tokn: unknown key"},
		{"service", "    balanse: roundrobin\n", "services[0].balanse: unknown key"},
		{"nested in service", "    health: {http: {paht: /}}\n", "services[0].health.http.paht: unknown key"},
		{"static entry", "services: [{name: a, listen: ':1', backends: {static: [{address: '127.0.0.1:1', wieght: 2}]}}]\n",
			"services[0].backends.static[0].wieght: unknown key"},
		{"docker selector block", "services: [{name: a, listen: ':1', backends: {docker: {servce: app}}}]\n",
			"services[0].backends.docker.servce: unknown key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			content := tt.yaml
			switch {
			case strings.HasPrefix(tt.yaml, "    "):
				content = minimalYAML + tt.yaml
			case !strings.HasPrefix(tt.yaml, "services"):
				content = tt.yaml + minimalYAML
			}
			_, err := load(t, "c.yaml", content)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Errorf("%v is not a *Error", err)
			}
		})
	}
}

// TestFileSizeLimit: a file up to MaxFileSize is read; one byte more is
// one clear error, and the file is not parsed.
func TestFileSizeLimit(t *testing.T) {
	pad := func(size int) string {
		body := minimalYAML + "# "
		return body + strings.Repeat("x", size-len(body)-1) + "\n"
	}
	// Read, not loaded: parsing 4 MiB of YAML takes seconds under -race.
	if data, err := ReadFile(writeFile(t, "c.yaml", pad(MaxFileSize))); err != nil || len(data) != MaxFileSize {
		t.Fatalf("a file of exactly %d bytes: %d bytes read, %v", MaxFileSize, len(data), err)
	}
	_, err := load(t, "c.yaml", pad(MaxFileSize+1))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a file of %d bytes: %v, want ErrTooLarge", MaxFileSize+1, err)
	}
	if !strings.Contains(err.Error(), "c.yaml: larger than the 4 MiB limit") {
		t.Errorf("error %q does not name the file and the limit", err)
	}
}

// TestHandoverSocket: the key from the file, TIERLB_HANDOVER_SOCKET over it.
func TestHandoverSocket(t *testing.T) {
	file := writeFile(t, "c.yaml", minimalYAML+"handover: {socket: /run/tierlb/handover.sock}\n")
	cfg, err := Load(Source{File: file})
	if err != nil || cfg.Handover.Socket != "/run/tierlb/handover.sock" {
		t.Fatalf("from the file: %q, %v", cfg.Handover.Socket, err)
	}
	t.Setenv("TIERLB_HANDOVER_SOCKET", "/shared/h.sock")
	cfg, err = Load(Source{File: file})
	if err != nil || cfg.Handover.Socket != "/shared/h.sock" {
		t.Fatalf("from the environment: %q, %v", cfg.Handover.Socket, err)
	}
}
