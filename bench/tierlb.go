package main

import (
	"context"
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
	// flag took one (proxy.ReserveProc: GOMAXPROCS set by the user is the
	// loop count, with no P kept spare).
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
// as a user would run tierlb with two static services: metrics on (they
// are always counted; the admin listener that serves them is on, at a free
// port so instances do not collide, and nobody scrapes it during a run),
// the access log off (a log line per connection is not what is compared,
// and HAProxy and nginx log nothing either), no Docker, and no health
// checks (they would add connections of their own to the counts).
func tierlbConfig(p frontPorts, whoamiAddr, iperfAddr string, zeroCopy bool) string {
	zc := "auto"
	if !zeroCopy {
		zc = "off"
	}
	svc := func(name string, port int, backend string) string {
		return fmt.Sprintf(`  - name: %s
    listen: 127.0.0.1:%d
    backends:
      static: [%q]
    health:
      type: none
    timeouts:
      idle: 1h
    zero_copy: %s
`, name, port, backend, zc)
	}
	return fmt.Sprintf(`admin:
  listen: 127.0.0.1:%d
log:
  level: warn
  access: false
docker:
  enabled: "false"
services:
`, p.Admin) + svc("http", p.HTTP, whoamiAddr) + svc("iperf", p.Iperf, iperfAddr)
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
	text := tierlbConfig(p, e.whoamiAddr, fmt.Sprintf("127.0.0.1:%d", e.iperfPort), !r.copyOnly)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		return nil, fmt.Errorf("write tierlb config: %w", err)
	}
	argv, env := tierlbArgs(r, cfg, os.Environ())
	pr, err := e.procs.start(r.name, argv, env, cred)
	if err != nil {
		return nil, err
	}
	return []*proc{pr}, nil
}
