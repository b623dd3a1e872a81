package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// env is what every run shares: the built binaries, the backends and the
// children to stop at the end.
type env struct {
	dir        string
	tierlb     string
	nginx      string
	nginxMod   string // load_module line, "" when stream is built in
	iperf3     string
	iperfPort  int // the iperf3 server's (TCP control and UDP data)
	dnsPort    int // whoami --dns
	versions   map[string]string
	procs      procs
	frontPorts [2]int // iperf, dns: the proxies' ports
}

func setup(ctx context.Context, dir string) (*env, error) {
	e := &env{dir: dir, versions: map[string]string{}}
	var missing []string
	for _, tool := range []string{"iperf3", "nginx"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			missing = append(missing, tool)
		}
		switch tool {
		case "iperf3":
			e.iperf3 = p
		case "nginx":
			e.nginx = p
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("missing %s: apt-get install -y iperf3 nginx libnginx-mod-stream", strings.Join(missing, ", "))
	}
	for _, m := range []string{"/usr/lib/nginx/modules/ngx_stream_module.so", "/usr/share/nginx/modules/ngx_stream_module.so"} {
		if _, err := os.Stat(m); err == nil {
			e.nginxMod = "load_module " + m + ";"
			break
		}
	}
	e.tierlb = filepath.Join(dir, "tierlb")
	whoami := filepath.Join(dir, "whoami")
	for bin, pkg := range map[string]string{e.tierlb: "./cmd/tierlb", whoami: "./cmd/whoami"} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build %s (run from the repository root): %w\n%s", pkg, err, out)
		}
	}
	e.versions["tierlb"] = version(e.tierlb, "version")
	e.versions["nginx"] = version(e.nginx, "-v")
	e.versions["iperf3"] = version(e.iperf3, "--version")
	e.versions["kernel"] = version("uname", "-r")
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	e.iperfPort, e.dnsPort = ports[0], ports[1]
	e.frontPorts = [2]int{ports[2], ports[3]}
	pr, err := e.procs.start("whoami", []string{whoami, "--listen", "127.0.0.1:0", "--name", "dns-1",
		"--dns", fmt.Sprintf("127.0.0.1:%d", e.dnsPort)}, filepath.Join(dir, "whoami.log"))
	if err != nil {
		return nil, err
	}
	if err := waitDNS(ctx, e.dnsPort); err != nil {
		e.procs.stop(pr)
		return nil, fmt.Errorf("whoami --dns: %w", err)
	}
	return e, nil
}

func version(bin string, arg string) string {
	out, _ := exec.Command(bin, arg).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

// freePorts returns n loopback ports free for both TCP and UDP now.
func freePorts(n int) ([]int, error) {
	var out []int
	var keep []func()
	defer func() {
		for _, f := range keep {
			f()
		}
	}()
	for len(out) < n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			ln.Close()
			continue
		}
		keep = append(keep, func() { ln.Close(); pc.Close() })
		out = append(out, port)
	}
	return out, nil
}

// waitDNS waits until a TXT query on port is answered.
func waitDNS(ctx context.Context, port int) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return err
		}
		_ = c.SetDeadline(time.Now().Add(200 * time.Millisecond))
		_, _ = c.Write(txtQuery(1))
		buf := make([]byte, 512)
		_, err = c.Read(buf)
		c.Close()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("no answer on 127.0.0.1:%d: %w", port, err)
		}
	}
}

// front is one started target.
type front struct {
	iperfPort, dnsPort int
	procs              []*proc
	e                  *env
	cpu                uint64 // ticks at the last cpuSince
}

func (f *front) measured() bool { return len(f.procs) > 0 }

// cpuSince returns the CPU seconds the target's processes used since the
// last call (or its start).
func (f *front) cpuSince() float64 {
	var ticks uint64
	for _, p := range f.procs {
		ticks += treeTicks(p.cmd.Process.Pid)
	}
	d := ticks - f.cpu
	f.cpu = ticks
	return float64(d) / clkTck
}

func (f *front) stop() {
	for _, p := range f.procs {
		f.e.procs.stop(p)
	}
}

// start runs a target: "direct" starts nothing.
func (e *env) start(ctx context.Context, name string, round int) (*front, error) {
	f := &front{e: e, iperfPort: e.iperfPort, dnsPort: e.dnsPort}
	if name == "direct" {
		return f, nil
	}
	f.iperfPort, f.dnsPort = e.frontPorts[0], e.frontPorts[1]
	dir := filepath.Join(e.dir, fmt.Sprintf("%s-%d", name, round))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var argv []string
	switch name {
	case "tierlb":
		cfg := filepath.Join(dir, "tierlb.yaml")
		if err := os.WriteFile(cfg, []byte(tierlbConfig(e, f)), 0o644); err != nil {
			return nil, err
		}
		argv = []string{e.tierlb, "run", "--config", cfg}
	case "nginx":
		cfg := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(cfg, []byte(nginxConfig(e, f, dir)), 0o644); err != nil {
			return nil, err
		}
		argv = []string{e.nginx, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", cfg}
	default:
		return nil, fmt.Errorf("unknown target %q", name)
	}
	p, err := e.procs.start(name, argv, filepath.Join(dir, "out.log"))
	if err != nil {
		return nil, err
	}
	f.procs = append(f.procs, p)
	if err := waitDNS(ctx, f.dnsPort); err != nil {
		f.stop()
		log, _ := os.ReadFile(filepath.Join(dir, "out.log"))
		return nil, fmt.Errorf("%s does not answer: %w\n%s", name, err, log)
	}
	f.cpuSince()
	return f, nil
}

// tierlbConfig: a TCP and a UDP service on one port for iperf3 (its control
// connection is TCP), and the DNS service, each query a session of its own.
// Loops are tierlb's default, one per core, as nginx's workers.
func tierlbConfig(e *env, f *front) string {
	return fmt.Sprintf(`admin: {listen: ""}
log: {level: warn, access: false}
docker: {enabled: "false"}
services:
  - name: iperf-control
    listen: 127.0.0.1:%[1]d
    backends: {static: ["127.0.0.1:%[2]d"]}
    health: {type: none}
  - name: iperf
    listen: 127.0.0.1:%[1]d
    protocol: udp
    backends: {static: ["127.0.0.1:%[2]d"]}
    health: {type: none}
  - name: dns
    listen: 127.0.0.1:%[3]d
    protocol: udp
    udp: {responses: 1}
    backends: {static: ["127.0.0.1:%[4]d"]}
    health: {type: none}
`, f.iperfPort, e.iperfPort, f.dnsPort, e.dnsPort)
}

// nginxConfig: the same with nginx stream, one worker per core, reuseport
// so that each worker has its own UDP socket (nginx's advice for UDP).
func nginxConfig(e *env, f *front, dir string) string {
	return fmt.Sprintf(`%s
daemon off;
master_process on;
worker_processes %d;
worker_rlimit_nofile 20000;
pid %s;
error_log %s warn;
events { worker_connections 20000; }
stream {
    server { listen 127.0.0.1:%d; proxy_pass 127.0.0.1:%d; }
    server { listen 127.0.0.1:%d udp reuseport; proxy_pass 127.0.0.1:%d; proxy_timeout 30s; }
    server { listen 127.0.0.1:%d udp reuseport; proxy_pass 127.0.0.1:%d; proxy_responses 1; proxy_timeout 30s; }
}
`, e.nginxMod, cores(), filepath.Join(dir, "nginx.pid"), filepath.Join(dir, "error.log"),
		f.iperfPort, e.iperfPort, f.iperfPort, e.iperfPort, f.dnsPort, e.dnsPort)
}

func cores() int { return runtime.NumCPU() }

// proc is a child started by the bench.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

// procs tracks the children so that each is stopped through its PID.
type procs struct{ list []*proc }

func (ps *procs) start(name string, argv []string, logFile string) (*proc, error) {
	lf, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	ps.list = append(ps.list, p)
	return p, nil
}

// stop sends SIGTERM (nginx: QUIT ends workers gracefully; TERM is fast
// shutdown, fine here) and SIGKILL after 5 s.
func (ps *procs) stop(p *proc) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (ps *procs) stopAll() {
	for i := len(ps.list) - 1; i >= 0; i-- {
		ps.stop(ps.list[i])
	}
}
