package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// haproxyConfig is HAProxy in mode tcp with splicing both ways, the setup
// the reference numbers came from.
//
// nbthread is the setting under test (the bench runs 1 up to the core
// count, as it does tierlb's event loops and nginx's workers). maxconn is left to HAProxy, which derives it from
// RLIMIT_NOFILE (20,000 here, not raisable) after reserving descriptors for
// its pipes, so the idle scenario shows how many connections it can really
// hold. Long client/server timeouts keep idle connections open.
func haproxyConfig(threads int, p frontPorts, whoamiAddr, iperfAddr string) string {
	return fmt.Sprintf(`global
    nbthread %d
    # no logging: a log line per connection is not what is compared

defaults
    mode tcp
    option splice-request
    option splice-response
    timeout connect 2s
    timeout client 1h
    timeout server 1h

frontend http
    bind 127.0.0.1:%d
    default_backend http

backend http
    server whoami %s

frontend iperf
    bind 127.0.0.1:%d
    default_backend iperf

backend iperf
    server iperf %s
`, threads, p.HTTP, whoamiAddr, p.Iperf, iperfAddr)
}

// startHAProxy runs haproxy in the foreground (-db) as its own process.
func startHAProxy(e *env, nbthread int, dir string, p frontPorts, cred *syscall.Credential) ([]*proc, error) {
	cfg := filepath.Join(dir, "haproxy.cfg")
	text := haproxyConfig(nbthread, p, e.whoamiAddr, fmt.Sprintf("127.0.0.1:%d", e.iperfPort))
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		return nil, fmt.Errorf("write haproxy config: %w", err)
	}
	pr, err := e.procs.start("haproxy", []string{e.tools.path("haproxy"), "-db", "-f", cfg}, nil, cred)
	if err != nil {
		return nil, err
	}
	return []*proc{pr}, nil
}
