package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// tierlbConfig is the YAML config (SPEC "Config file") for one bench run:
// two static services, no admin listener (it would collide with other
// instances on 127.0.0.1:9090), no Docker, no access log (a log line per
// connection is not what is being compared), no health checks (they would
// add connections of their own to the counts).
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
	return `admin:
  listen: ""
log:
  level: warn
  access: false
docker:
  enabled: "false"
services:
` + svc("http", p.HTTP, whoamiAddr) + svc("iperf", p.Iperf, iperfAddr)
}

// startTierlb writes the config and runs `tierlb run --config FILE`.
func startTierlb(e *env, dir string, p frontPorts, zeroCopy bool, cred *syscall.Credential) ([]*proc, error) {
	cfg := filepath.Join(dir, "tierlb.yaml")
	text := tierlbConfig(p, e.whoamiAddr, fmt.Sprintf("127.0.0.1:%d", e.iperfPort), zeroCopy)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		return nil, fmt.Errorf("write tierlb config: %w", err)
	}
	name := "tierlb"
	if !zeroCopy {
		name = "tierlb-copy"
	}
	pr, err := e.procs.start(name, []string{e.tierlbBin, "run", "--config", cfg}, cred)
	if err != nil {
		return nil, err
	}
	return []*proc{pr}, nil
}
