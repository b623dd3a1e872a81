package main

import (
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tierlb/tierlb/config"
)

func TestCheckPrintsResolvedConfig(t *testing.T) {
	t.Setenv("TIERLB_LOG_LEVEL", "warn")
	file := writeFile(t, "c.yaml", minimalYAML)
	code, stdout, stderr := runInProcess(t, "check", "--config", file, "--drain-timeout", "3s")
	if code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	// The output is YAML a user can feed back: it must load to the same config.
	var back map[string]any
	if err := yaml.Unmarshal([]byte(stdout), &back); err != nil {
		t.Fatalf("output is not YAML: %v\n%s", err, stdout)
	}
	for _, want := range []string{"level: warn", "drain_timeout: 3s", "balance: roundrobin", "idle: 1h0m0s",
		"address: 127.0.0.1:9001", "expect_status: 200-399", "zero_copy: auto"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	again := writeFile(t, "again.yaml", stdout)
	second, err := config.Load(config.Source{File: again})
	if err != nil {
		t.Fatalf("printed config does not load: %v", err)
	}
	b, _ := resolvedYAML(second, planProcs(second.Engine.Loops, hostProcs()))
	_, printed, _ := strings.Cut(stdout, "\n") // without the two comment lines
	ports, printed, _ := strings.Cut(printed, "\n")
	if !regexp.MustCompile(`^# local ports of this network namespace: \d+ new connections/s per backend address \(\d+ local ports`).MatchString(ports) {
		t.Errorf("second line does not say the local port capacity: %q", ports)
	}
	if string(b) != printed {
		t.Errorf("round trip changed the config:\n%s\nvs\n%s", printed, b)
	}
}

func TestCheckRedactsTheToken(t *testing.T) {
	t.Setenv("TIERLB_ADMIN_TOKEN", "s3cret-token")
	file := writeFile(t, "c.yaml", minimalYAML)
	code, stdout, stderr := runInProcess(t, "check", "--config", file)
	if code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	if strings.Contains(stdout, "s3cret") {
		t.Errorf("check printed the admin token:\n%s", stdout)
	}
	if !regexp.MustCompile(`(?m)^  token: <redacted> # set, not printed$`).MatchString(stdout) {
		t.Errorf("output does not say the token is set:\n%s", stdout)
	}
	// Without a token the field prints as it is.
	t.Setenv("TIERLB_ADMIN_TOKEN", "")
	_, stdout, _ = runInProcess(t, "check", "--config", file)
	if !regexp.MustCompile(`(?m)^  token: ""$`).MatchString(stdout) {
		t.Errorf("empty token not printed as empty:\n%s", stdout)
	}
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // regexp
		stderr string // regexp
	}{
		{"version", []string{"version"}, exitOK, `^tierlb \S+ \(commit \S+, ` + regexp.QuoteMeta(runtime.Version()), ""},
		{"help", []string{"-h"}, exitOK, `Commands:\n  run`, ""},
		{"run help", []string{"run", "-h"}, exitOK, `--listen`, ""},
		{"check help", []string{"check", "--help"}, exitOK, `--config`, ""},
		{"unknown command", []string{"serve"}, exitConfig, "", `unknown command "serve"`},
		{"unknown flag", []string{"run", "--lisen", ":1"}, exitConfig, "", `unknown flag: --lisen`},
		{"bad flag value", []string{"check", "--drain-timeout", "soon"}, exitConfig, "", `invalid argument "soon"`},
		{"stray argument", []string{"check", "extra"}, exitConfig, "", `unexpected argument "extra"`},
		{"quick flag without quick mode", []string{"check", "--balance", "leastconn"}, exitConfig, "", `--balance applies to quick mode only`},
		{"quick mode check", []string{"check", "--listen", "127.0.0.1:9000", "--backend", "127.0.0.1:8001,127.0.0.1:8002", "--balance", "leastconn"},
			exitOK, `(?s)name: quick.*listen: 127.0.0.1:9000.*balance: leastconn.*address: 127.0.0.1:8002`, ""},
		{"quick mode needs a backend", []string{"check", "--listen", "127.0.0.1:9000"}, exitConfig, "", `services\[0\].backends: no static backends`},
		{"quick mode and file", []string{"check", "--config", "FILE", "--listen", ":1", "--backend", "127.0.0.1:2"}, exitConfig, "",
			`cannot be combined with services from a config file`},
		{"missing file", []string{"check", "--config", "/nonexistent/tierlb.yaml"}, exitConfig, "", `no such file`},
		{"bad extension", []string{"check", "--config", "FILE.ini"}, exitConfig, "", `unsupported extension ".ini"`},
		{"bad yaml", []string{"check", "--config", "BAD.yaml"}, exitConfig, "", `yaml:`},
		{"file too large", []string{"check", "--config", "BIG.yaml"}, exitConfig, "", `big.yaml: larger than the 4 MiB limit for a config file`},
		{"bad config in run", []string{"run", "--config", "FILE", "--log-level", "loud"}, exitConfig, "", `log.level: "loud" is not one of`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := make([]string, len(tt.args))
			for i, a := range tt.args {
				switch a {
				case "FILE":
					a = writeFile(t, "c.yaml", minimalYAML)
				case "FILE.ini":
					a = writeFile(t, "c.ini", "")
				case "BAD.yaml":
					a = writeFile(t, "c.yaml", "services: [\n")
				case "BIG.yaml":
					a = writeFile(t, "big.yaml", minimalYAML+"# "+strings.Repeat("x", 4<<20)+"\n")
				}
				args[i] = a
			}
			code, stdout, stderr := runInProcess(t, args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
			}
			if tt.stdout != "" && !regexp.MustCompile(tt.stdout).MatchString(stdout) {
				t.Errorf("stdout does not match %q:\n%s", tt.stdout, stdout)
			}
			if tt.stderr != "" && !regexp.MustCompile(tt.stderr).MatchString(stderr) {
				t.Errorf("stderr does not match %q:\n%s", tt.stderr, stderr)
			}
		})
	}
}

// TestBinaryExitCodes runs the built binary, as scripts do.
func TestBinaryExitCodes(t *testing.T) {
	good := writeFile(t, "good.yaml", minimalYAML)
	bad := writeFile(t, "bad.yaml", minimalYAML+"    retries: -1\n")
	tests := []struct {
		name string
		args []string
		env  []string
		code int
	}{
		{"check good", []string{"check", "--config", good}, nil, 0},
		{"check bad", []string{"check", "--config", bad}, nil, 1},
		{"check via TIERLB_CONFIG", []string{"check"}, []string{"TIERLB_CONFIG=" + bad}, 1},
		{"run bad", []string{"run", "-c", bad}, nil, 1},
		{"default command is run", []string{"--config", bad}, nil, 1},
		{"version", []string{"version"}, nil, 0},
		{"usage error", []string{"nope"}, nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(binary, tt.args...)
			cmd.Env = append(cmd.Environ(), tt.env...)
			out, _ := cmd.CombinedOutput()
			if got := cmd.ProcessState.ExitCode(); got != tt.code {
				t.Errorf("exit %d, want %d; output:\n%s", got, tt.code, out)
			}
		})
	}
}
