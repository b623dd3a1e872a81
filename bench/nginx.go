package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// nginxConfig is an nginx stream proxy with a master and `workers` worker
// processes (the setting under test, like HAProxy's threads and tierlb's
// event loops) for one run's listeners (frontPorts by kind).
// worker_connections is raised to the fd limit because every proxied
// connection takes two; proxy_timeout keeps idle connections open.
// loadModule is the load_module line for a dynamic stream module, or "".
//
// UDP listeners use reuseport, so that each worker has its own socket
// (nginx's advice for UDP); each query is a session of its own
// (proxy_responses 1), as tierlb's udp.responses: 1. SNI routing uses
// ssl_preread with a map from the server name to the backend. A service on
// a port range is one server block with a listen line per port: nginx 1.22
// has no range syntax (1.27.3 added it).
func nginxConfig(workers int, dir, loadModule string, p frontPorts, b backendAddrs) string {
	var s strings.Builder
	fmt.Fprintf(&s, `%s
daemon off;
master_process on;
worker_processes %d;
worker_rlimit_nofile 20000;
pid %s;
error_log %s warn;

events {
    worker_connections 20000;
}

stream {
    proxy_timeout 1h;
`, loadModule, workers, filepath.Join(dir, "nginx.pid"), filepath.Join(dir, "error.log"))
	server := func(backend string, listen ...string) {
		s.WriteString("    server {\n")
		for _, l := range listen {
			fmt.Fprintf(&s, "        listen %s;\n", l)
		}
		fmt.Fprintf(&s, "        proxy_pass %s;\n    }\n", backend)
	}
	addr := func(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }
	switch p.Kind {
	case frontTCP:
		server(b.HTTP, addr(p.HTTP))
		server(b.Iperf, addr(p.Iperf))
	case frontSNI:
		s.WriteString("    map $ssl_preread_server_name $sni_backend {\n")
		for i, name := range sniNames {
			fmt.Fprintf(&s, "        %s %s;\n", name, b.TLS[i])
		}
		fmt.Fprintf(&s, "    }\n    server {\n        listen %s;\n        ssl_preread on;\n        proxy_pass $sni_backend;\n    }\n", addr(p.TLS))
	case frontUDPQueries:
		fmt.Fprintf(&s, "    server {\n        listen %s udp reuseport;\n        proxy_pass %s;\n        proxy_responses 1;\n        proxy_timeout 30s;\n    }\n",
			addr(p.DNS), b.DNS)
	case frontUDPStream:
		server(b.Iperf, addr(p.Iperf))
		fmt.Fprintf(&s, "    server {\n        listen %s udp reuseport;\n        proxy_pass %s;\n        proxy_timeout 30s;\n    }\n",
			addr(p.Iperf), b.Iperf)
	case frontServices:
		for _, port := range p.Services {
			server(b.HTTP, addr(port))
		}
	case frontRange:
		var ls []string
		for _, port := range p.Services {
			ls = append(ls, addr(port))
		}
		server(b.HTTP, ls...)
	}
	s.WriteString("}\n")
	return s.String()
}

// startNginx runs nginx in the foreground with a prefix in the run's
// directory, so it touches nothing under /etc or /var.
func startNginx(e *env, workers int, dir string, p frontPorts, cred *syscall.Credential) ([]*proc, error) {
	load := ""
	if e.tools.nginxStreamModule != "" {
		load = fmt.Sprintf("load_module %s;", e.tools.nginxStreamModule)
	}
	cfg := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cfg, []byte(nginxConfig(workers, dir, load, p, e.backends())), 0o644); err != nil {
		return nil, fmt.Errorf("write nginx config: %w", err)
	}
	argv := []string{e.tools.path("nginx"), "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", cfg}
	pr, err := e.procs.start("nginx", argv, nil, cred)
	if err != nil {
		return nil, err
	}
	return []*proc{pr}, nil
}
