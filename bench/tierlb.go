package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// tierlbBuild is one tierlb binary: the work tree's, or the baseline's.
type tierlbBuild struct {
	bin string
	// name heads its columns: "tierlb", or "tierlb@REV" for a baseline.
	name string
	// loopsFlag: `tierlb run --help` lists --loops, so a loop count is given
	// as that flag; otherwise as GOMAXPROCS=N, which is how tierlb before the
	// flag took one: a GOMAXPROCS set by the user is the loop count, with no
	// P kept spare.
	loopsFlag bool
}

var loopsFlagRE = regexp.MustCompile(`(?m)^\s+--loops\b`)

// probeLoopsFlag asks the binary whether it has --loops.
func probeLoopsFlag(ctx context.Context, bin string) bool {
	out, _ := exec.CommandContext(ctx, bin, "run", "--help").CombinedOutput()
	return loopsFlagRE.Match(out)
}

// loopSetting is how n loops are asked for, as a user would type it.
func (b *tierlbBuild) loopSetting(n string) string {
	if b.loopsFlag {
		return "--loops " + n
	}
	return "GOMAXPROCS=" + n
}

// name sets the Setting and Label of one of this build's targets.
func (b *tierlbBuild) nameTarget(t *target, defaultLoops int) {
	t.Setting = fmt.Sprintf("%s (%s)", plural(t.Threads, "loop"), b.loopSetting(strconv.Itoa(t.Threads)))
	if t.Default {
		t.Setting = fmt.Sprintf("default (%s)", plural(defaultLoops, "loop"))
	}
	name := b.name
	if t.Family == "tierlb-copy" {
		name += " zero_copy: off,"
	}
	t.Label = name + " " + t.Setting
}

// tierlbRun is one start of tierlb: which build, at which loop count
// (0: its default), with or without zero copy.
type tierlbRun struct {
	build    *tierlbBuild
	name     string // for the log file
	loops    int
	copyOnly bool
}

// tierlbConfig is the YAML config (SPEC "Config file") for one bench run,
// as a user would write it for the run's listeners (frontPorts by kind):
// metrics on (they are always counted; the admin listener that serves them
// is on, at a free port so instances do not collide, and nobody scrapes it
// during a run), the access log off (a log line per connection is not what
// is compared, and HAProxy and nginx log nothing either), no Docker, and no
// health checks (they would add connections of their own to the counts).
func tierlbConfig(p frontPorts, b backendAddrs, zeroCopy bool) string {
	zc := "auto"
	if !zeroCopy {
		zc = "off"
	}
	var s strings.Builder
	fmt.Fprintf(&s, `admin:
  listen: 127.0.0.1:%d
log:
  level: warn
  access: false
docker:
  enabled: "false"
services:
`, p.Admin)
	svc := func(name, listen, backend, extra string) {
		fmt.Fprintf(&s, `  - name: %s
    listen: %s
    backends:
      static: [%q]
    health:
      type: none
%s`, name, listen, backend, extra)
	}
	tcp := fmt.Sprintf("    timeouts:\n      idle: 1h\n    zero_copy: %s\n", zc)
	addr := func(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }
	switch p.Kind {
	case frontTCP:
		svc("http", addr(p.HTTP), b.HTTP, tcp)
		svc("iperf", addr(p.Iperf), b.Iperf, tcp)
	case frontSNI:
		for i, name := range sniNames {
			svc(fmt.Sprintf("tls%d", i), addr(p.TLS), b.TLS[i], fmt.Sprintf("    sni: [%s]\n", name)+tcp)
		}
	case frontUDPQueries:
		svc("dns", addr(p.DNS), b.DNS, "    protocol: udp\n    udp:\n      responses: 1\n")
	case frontUDPStream:
		svc("iperf-control", addr(p.Iperf), b.Iperf, tcp)
		svc("iperf", addr(p.Iperf), b.Iperf, "    protocol: udp\n")
	case frontServices:
		for i, port := range p.Services {
			svc(fmt.Sprintf("svc%d", i), addr(port), b.HTTP, tcp)
		}
	case frontRange:
		svc("range", "127.0.0.1:"+p.rangeSpec(), b.HTTP, tcp)
	}
	return s.String()
}

// tierlbArgs is the command line and the environment of one run. The
// bench's own GOMAXPROCS and TIERLB_* variables are not passed on: the
// default column must be tierlb's default, and the config file, not the
// shell the bench was started from, says how tierlb runs.
func tierlbArgs(r tierlbRun, cfg string, environ []string) (argv, env []string) {
	argv = []string{r.build.bin, "run", "--config", cfg}
	for _, kv := range environ {
		if !strings.HasPrefix(kv, "GOMAXPROCS=") && !strings.HasPrefix(kv, "TIERLB_") {
			env = append(env, kv)
		}
	}
	if r.loops > 0 {
		if r.build.loopsFlag {
			argv = append(argv, "--loops", strconv.Itoa(r.loops))
		} else {
			env = append(env, "GOMAXPROCS="+strconv.Itoa(r.loops))
		}
	}
	return argv, env
}

// startTierlb writes the config and runs `tierlb run --config FILE`.
func startTierlb(e *env, dir string, p frontPorts, r tierlbRun, cred *syscall.Credential) ([]*proc, error) {
	if r.build == nil || r.build.bin == "" {
		return nil, fmt.Errorf("%s: no binary", r.name)
	}
	cfg := filepath.Join(dir, "tierlb.yaml")
	if err := os.WriteFile(cfg, []byte(tierlbConfig(p, e.backends(), !r.copyOnly)), 0o644); err != nil {
		return nil, fmt.Errorf("write tierlb config: %w", err)
	}
	if p.Kind == frontRange {
		if err := checkRange(r.build.bin, cfg); err != nil {
			return nil, err
		}
	}
	argv, env := tierlbArgs(r, cfg, os.Environ())
	pr, err := e.procs.start(r.name, argv, env, cred)
	if err != nil {
		return nil, err
	}
	return []*proc{pr}, nil
}

// errSkipped marks a run that cannot happen with this binary: its note says
// why, and it is not an error of the run.
var errSkipped = errors.New("skipped")

// checkRange asks `tierlb check` whether the binary takes a port range in
// listen (issue 17); a binary from before it refuses the key, and the run
// is skipped with that answer rather than failed.
func checkRange(bin, cfg string) error {
	out, err := exec.Command(bin, "check", "--config", cfg).CombinedOutput()
	if err == nil {
		return nil
	}
	if strings.Contains(string(out), ".listen") {
		return fmt.Errorf("%w: needs port ranges in listen (issue 17); this tierlb says: %s", errSkipped,
			strings.Join(strings.Fields(string(out)), " "))
	}
	return fmt.Errorf("tierlb check: %w: %s", err, strings.TrimSpace(string(out)))
}
