package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// spliceMode is how HAProxy moves bytes between the sockets. Which costs
// least depends on the message size: splicing a 100-byte answer costs more
// than copying it, so every mode is a setting of its own and each row
// compares HAProxy at its best one.
type spliceMode int

const (
	spliceBoth spliceMode = iota // option splice-request + option splice-response
	spliceAuto                   // option splice-auto: HAProxy's own heuristic
	spliceOff                    // global nosplice: recv/send only
)

// spliceModes are the modes in column order. Splice both ways keeps the bare
// target name (haproxy-nbthreadN) it had before the other modes were added,
// so earlier results.json files still re-render.
func spliceModes() []struct {
	mode         spliceMode
	name, suffix string
} {
	return []struct {
		mode         spliceMode
		name, suffix string
	}{
		{spliceBoth, "splice both ways", ""},
		{spliceAuto, "splice-auto", "-splice-auto"},
		{spliceOff, "nosplice", "-nosplice"},
	}
}

// haproxyRun is one start of HAProxy: its settings.
type haproxyRun struct {
	threads int
	splice  spliceMode
}

// haproxyConfig is HAProxy in mode tcp for one run's listeners (frontPorts
// by kind), at the run's nbthread and splice mode, as the peer is
// documented (HAProxy 2.6 configuration manual: global nosplice, option
// splice-auto, splice-request, splice-response; bind takes a port range).
//
// maxconn is left to HAProxy, which derives it from RLIMIT_NOFILE (20,000
// here, not raisable) after reserving descriptors for its pipes, so the idle
// scenario shows how many connections it can really hold. Long
// client/server timeouts keep idle connections open. No logging: a log line
// per connection is not what is compared.
func haproxyConfig(h haproxyRun, p frontPorts, b backendAddrs) string {
	var s strings.Builder
	fmt.Fprintf(&s, "global\n    nbthread %d\n", h.threads)
	if h.splice == spliceOff {
		s.WriteString("    nosplice\n")
	}
	s.WriteString("\ndefaults\n    mode tcp\n")
	switch h.splice {
	case spliceBoth:
		s.WriteString("    option splice-request\n    option splice-response\n")
	case spliceAuto:
		s.WriteString("    option splice-auto\n")
	}
	s.WriteString("    timeout connect 2s\n    timeout client 1h\n    timeout server 1h\n")
	listen := func(name, bind, server string) {
		fmt.Fprintf(&s, "\nlisten %s\n    bind %s\n    server %s %s\n", name, bind, name, server)
	}
	switch p.Kind {
	case frontTCP:
		listen("http", fmt.Sprintf("127.0.0.1:%d", p.HTTP), b.HTTP)
		listen("iperf", fmt.Sprintf("127.0.0.1:%d", p.Iperf), b.Iperf)
	case frontSNI:
		fmt.Fprintf(&s, `
frontend tls
    bind 127.0.0.1:%d
    tcp-request inspect-delay 5s
    tcp-request content accept if { req.ssl_hello_type 1 }
`, p.TLS)
		for i, name := range sniNames {
			fmt.Fprintf(&s, "    use_backend tls%d if { req.ssl_sni -i %s }\n", i, name)
		}
		for i := range sniNames {
			fmt.Fprintf(&s, "\nbackend tls%d\n    server tls%d %s\n", i, i, b.TLS[i])
		}
	case frontServices:
		for i, port := range p.Services {
			listen(fmt.Sprintf("svc%d", i), fmt.Sprintf("127.0.0.1:%d", port), b.HTTP)
		}
	case frontRange:
		listen("range", "127.0.0.1:"+p.rangeSpec(), b.HTTP)
	}
	return s.String()
}

// startHAProxy runs haproxy in the foreground (-db) as its own process.
func startHAProxy(e *env, h haproxyRun, dir string, p frontPorts, cred *syscall.Credential) ([]*proc, error) {
	if p.Kind == frontUDPQueries || p.Kind == frontUDPStream {
		return nil, fmt.Errorf("haproxy 2.6 proxies no UDP: %w", errSkipped)
	}
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(haproxyConfig(h, p, e.backends())), 0o644); err != nil {
		return nil, fmt.Errorf("write haproxy config: %w", err)
	}
	pr, err := e.procs.start("haproxy", []string{e.tools.path("haproxy"), "-db", "-f", cfg}, nil, cred)
	if err != nil {
		return nil, err
	}
	return []*proc{pr}, nil
}
