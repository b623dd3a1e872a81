package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// setup is one run's shape: which check, how many backends, how they are
// split into services.
type setup struct {
	check      string // tcp | http
	backends   int
	perService int
	interval   time.Duration
	port       int // the backend server's port
}

func (s setup) services() int { return (s.backends + s.perService - 1) / s.perService }

// members returns the backend indexes of service i.
func (s setup) members(i int) (lo, hi int) {
	return i * s.perService, min((i+1)*s.perService, s.backends)
}

// tierlbConfig is tierlb's YAML: static services with no traffic, checks
// at s.interval with defaults otherwise (timeout 1s, rise 2, fall 3),
// passive checks off (no traffic reaches them anyway), the admin listener
// for /metrics, and logs at warn (state changes are info).
func tierlbConfig(s setup, adminPort int, listen []int, pprof bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "admin: {listen: \"127.11.0.1:%d\", pprof: %t}\nlog: {level: warn, access: false}\ndocker: {enabled: \"false\"}\nservices:\n", adminPort, pprof)
	health := fmt.Sprintf("{type: tcp, interval: %s}", s.interval)
	if s.check == "http" {
		health = fmt.Sprintf("{type: http, interval: %s, http: {path: /healthz, expect_status: \"200\"}}", s.interval)
	}
	for i := range s.services() {
		fmt.Fprintf(&b, "  - name: s%d\n    listen: 127.11.0.1:%d\n    health: %s\n    backends:\n      static:\n", i, listen[i], health)
		lo, hi := s.members(i)
		for j := lo; j < hi; j++ {
			fmt.Fprintf(&b, "        - %s\n", backendAddr(j, s.port))
		}
	}
	return b.String()
}

// haproxyConfig is the same setup for HAProxy: one thread, a listen
// section per service, `check inter` at the same interval (HAProxy's
// defaults otherwise: rise 2, fall 3, timeout check = inter-bounded
// connect timeout of 1 s).
func haproxyConfig(s setup, listen []int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global\n    nbthread 1\n    maxconn 2000\n\ndefaults\n    mode tcp\n    timeout connect 1s\n    timeout check 1s\n    timeout client 30s\n    timeout server 30s\n\n")
	ms := s.interval.Milliseconds()
	for i := range s.services() {
		fmt.Fprintf(&b, "listen s%d\n    bind 127.11.0.1:%d\n", i, listen[i])
		if s.check == "http" {
			b.WriteString("    option httpchk GET /healthz\n    http-check expect status 200\n")
		}
		lo, hi := s.members(i)
		for j := lo; j < hi; j++ {
			fmt.Fprintf(&b, "    server b%d %s check inter %dms\n", j, backendAddr(j, s.port), ms)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// proxyProc is a running proxy.
type proxyProc struct {
	cmd       *exec.Cmd
	adminPort int // tierlb only
	log       string
}

// logTail is the end of the proxy's output, for an error message.
func (p *proxyProc) logTail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func (p *proxyProc) stop() {
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
}

func startProxy(name, tierlb, dir string, s setup, pprof bool) (*proxyProc, error) {
	listen := make([]int, 0, s.services())
	for len(listen) < s.services() {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		listen = append(listen, p)
	}
	log, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	defer log.Close()
	p := &proxyProc{log: log.Name()}
	switch name {
	case "tierlb":
		if p.adminPort, err = freePort(); err != nil {
			return nil, err
		}
		cfg := filepath.Join(dir, "tierlb.yaml")
		if err := os.WriteFile(cfg, []byte(tierlbConfig(s, p.adminPort, listen, pprof)), 0o644); err != nil {
			return nil, err
		}
		p.cmd = exec.Command(tierlb, "run", "--config", cfg)
	case "haproxy":
		cfg := filepath.Join(dir, "haproxy.cfg")
		if err := os.WriteFile(cfg, []byte(haproxyConfig(s, listen)), 0o644); err != nil {
			return nil, err
		}
		p.cmd = exec.Command("haproxy", "-db", "-f", cfg)
	default:
		return nil, fmt.Errorf("unknown proxy %q", name)
	}
	p.cmd.Stdout, p.cmd.Stderr = log, log
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	if err := waitTCP(fmt.Sprintf("127.11.0.1:%d", listen[len(listen)-1]), 20*time.Second); err != nil {
		p.stop()
		return nil, fmt.Errorf("%s: %w; its log ends:\n%s", name, err, p.logTail())
	}
	return p, nil
}

// checksTotal sums tierlb_health_checks_total over every series.
func checksTotal(adminPort int) (float64, error) {
	c := http.Client{Timeout: time.Minute} // 10 MB at 10,000 backends, on a loaded machine
	resp, err := c.Get(fmt.Sprintf("http://127.11.0.1:%d/metrics", adminPort))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "tierlb_health_checks_total{") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("metrics line %q: %w", line, err)
		}
		sum += v
	}
	return sum, sc.Err()
}

// fetchProfile saves tierlb's CPU profile over d to path.
func fetchProfile(adminPort int, d time.Duration, path string) error {
	c := http.Client{Timeout: d + 30*time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.11.0.1:%d/debug/pprof/profile?seconds=%d", adminPort, int(d.Seconds())))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// clkTck is the kernel's USER_HZ, the unit of /proc/net/tcp's timers.
const clkTck = 100

// cpuTime is the CPU time a process's threads have run, from each
// thread's /proc/PID/task/TID/schedstat, in nanoseconds. /proc/PID/stat
// counts in 10 ms ticks, and 200 backends' checks over a 20 s window cost
// only 15 to 40 of them: a tick more or less moved the figure by 3-7%.
// A thread that exits takes its time with it; the proxies measured here
// keep theirs (HAProxy with nbthread 1 has one, Go's threads stay).
func cpuTime(pid int) (time.Duration, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var sum time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, t.Name(), "schedstat"))
		if err != nil {
			continue // exited since the listing
		}
		f := strings.Fields(string(b))
		if len(f) < 1 {
			return 0, fmt.Errorf("%s/%s/schedstat: empty", dir, t.Name())
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s/%s/schedstat: %w", dir, t.Name(), err)
		}
		sum += time.Duration(ns)
	}
	return sum, nil
}

// timeWaits counts the TIME_WAIT sockets that a checker made in the last
// d: those whose remote end is the backends' port (the checker's side of a
// check) and whose 60 s timer has more than 60 s - d left.
func timeWaits(port int, d time.Duration) int {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return -1
	}
	want := fmt.Sprintf(":%04X", port)
	young := uint64((60*time.Second - d) / (time.Second / clkTck))
	n := 0
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		// sl local remote st tx:rx tr:when: state 06 is TIME_WAIT.
		if len(f) < 6 || f[3] != "06" || !strings.HasSuffix(f[2], want) {
			continue
		}
		_, when, _ := strings.Cut(f[5], ":")
		if left, err := strconv.ParseUint(when, 16, 64); err == nil && left > young {
			n++
		}
	}
	return n
}

func waitTCP(addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening after %v: %w", addr, within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePort returns a port free on proxyIP. The proxies listen on
// 127.11.0.1 rather than 127.0.0.1 so that the TIME_WAITs other programs
// leave on 127.0.0.1's ports never make a bind fail.
//
// A port is handed out once per bench run: a port closed at once may come
// back from the kernel, to this proxy or to one starting beside it.
func freePort() (int, error) {
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.ports == nil {
		handedOut.ports = map[int]bool{}
	}
	for {
		ln, err := net.Listen("tcp", "127.11.0.1:0")
		if err != nil {
			return 0, err
		}
		p := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !handedOut.ports[p] {
			handedOut.ports[p] = true
			return p, nil
		}
	}
}

var handedOut struct {
	sync.Mutex
	ports map[int]bool
}
