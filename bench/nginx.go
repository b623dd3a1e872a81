package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// nginxConfig is an nginx stream proxy with a master and `workers` worker
// processes (the setting under test, like HAProxy's threads and tierlb's
// event loops). worker_connections is raised to the fd limit because every
// proxied connection takes two; proxy_timeout keeps idle connections open.
// loadModule is the load_module line for a dynamic stream module, or "".
func nginxConfig(workers int, dir, loadModule string, p frontPorts, whoamiAddr, iperfAddr string) string {
	return fmt.Sprintf(`%s
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
    server {
        listen 127.0.0.1:%d;
        proxy_pass %s;
    }
    server {
        listen 127.0.0.1:%d;
        proxy_pass %s;
    }
}
`, loadModule, workers, filepath.Join(dir, "nginx.pid"), filepath.Join(dir, "error.log"),
		p.HTTP, whoamiAddr, p.Iperf, iperfAddr)
}

// startNginx runs nginx in the foreground with a prefix in the run's
// directory, so it touches nothing under /etc or /var.
func startNginx(e *env, workers int, dir string, p frontPorts, cred *syscall.Credential) ([]*proc, error) {
	load := ""
	if e.tools.nginxStreamModule != "" {
		load = fmt.Sprintf("load_module %s;", e.tools.nginxStreamModule)
	}
	cfg := filepath.Join(dir, "nginx.conf")
	text := nginxConfig(workers, dir, load, p, e.whoamiAddr, fmt.Sprintf("127.0.0.1:%d", e.iperfPort))
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		return nil, fmt.Errorf("write nginx config: %w", err)
	}
	argv := []string{e.tools.path("nginx"), "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", cfg}
	pr, err := e.procs.start("nginx", argv, nil, cred)
	if err != nil {
		return nil, err
	}
	return []*proc{pr}, nil
}
