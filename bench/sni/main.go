// Command sni measures TLS handshakes routed by server name through tierlb
// and through HAProxy (tcp-request inspect-delay + req.ssl_sni), in one
// run: full handshakes per second, and the proxy's CPU per handshake.
//
//	go run ./bench/sni                      # 3 rounds of 5 s per proxy and loop count
//	go run ./bench/sni -rounds 1 -duration 2s
//
// Two TLS backends with their own self-signed certificates run in this
// process, as do the clients: each connection is a fresh TCP connection
// and a full handshake (no resumption) with one of the two names, a
// one-line answer from the backend, and a close. Only the proxy's own CPU
// (from /proc) is charged to it. Rounds alternate the proxies so neither
// always runs after the other. Every load is on 127.0.0.1, bounded in
// time, and every child is stopped through its PID.
package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/sni:", err)
		os.Exit(1)
	}
}

type options struct {
	rounds   int
	duration time.Duration
	conns    int
	loops    []int
	out      string
}

func run() error {
	var o options
	loops := flag.String("loops", "1,2", "proxy threads/loops to compare (HAProxy nbthread = tierlb engine.loops)")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds per proxy and loop count")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "load time per run")
	flag.IntVar(&o.conns, "conns", 16, "concurrent clients")
	flag.StringVar(&o.out, "out", "bench/results/sni.md", "results file (markdown)")
	flag.Parse()
	for _, s := range strings.Split(*loops, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("-loops %q: want numbers from 1", *loops)
		}
		o.loops = append(o.loops, n)
	}
	if _, err := exec.LookPath("haproxy"); err != nil {
		return errors.New("haproxy not found: apt-get install -y haproxy")
	}
	tmp, err := os.MkdirTemp("", "tierlb-sni-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	tierlb := filepath.Join(tmp, "tierlb")
	build := exec.Command("go", "build", "-o", tierlb, "./cmd/tierlb")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build tierlb: %v\n%s", err, out)
	}

	backends := map[string]*backend{}
	roots := x509.NewCertPool()
	for _, name := range []string{"app.example.com", "api.example.com"} {
		b, err := startBackend(name)
		if err != nil {
			return err
		}
		defer b.ln.Close()
		backends[name] = b
		roots.AddCert(b.cert)
	}
	client := &tls.Config{RootCAs: roots, ClientSessionCache: nil}

	type key struct {
		proxy string
		loops int
	}
	results := map[key][]result{}
	direct := []result{}
	for round := range o.rounds {
		r, err := load(context.Background(), o, "", backends, client)
		if err != nil {
			return fmt.Errorf("direct: %w", err)
		}
		direct = append(direct, r)
		for _, n := range o.loops {
			order := []string{"tierlb", "haproxy"}
			if round%2 == 1 {
				slices.Reverse(order)
			}
			for _, proxy := range order {
				r, err := runProxy(o, proxy, n, tierlb, tmp, backends, client)
				if err != nil {
					return fmt.Errorf("%s with %d loops: %w", proxy, n, err)
				}
				fmt.Printf("round %d %-8s loops %d: %7.0f handshakes/s, %5.1f µs proxy CPU per handshake, %d errors\n",
					round+1, proxy, n, r.rate, r.cpuPer*1e6, r.errors)
				results[key{proxy, n}] = append(results[key{proxy, n}], r)
			}
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "# SNI routing: TLS handshakes through tierlb and HAProxy\n\n")
	fmt.Fprintf(&b, "`go run ./bench/sni -rounds %d -duration %s -conns %d`, %s, %d cores, load average at the end %s.\n\n",
		o.rounds, o.duration, o.conns, time.Now().UTC().Format("2006-01-02 15:04 MST"), numCPU(), loadavg())
	fmt.Fprintf(&b, "Each connection: TCP connect, a full TLS 1.3 handshake (Go's client: X25519MLKEM768 key share, a ~1.4 KB\n"+
		"ClientHello) naming app.example.com or api.example.com in turn, the backend's one-line answer, close. %d clients;\n"+
		"both backends and the clients run in the bench process, so the rate is bounded by their crypto; the proxy's own\n"+
		"CPU (user+system, from /proc) is what the last columns charge. Medians of %d rounds (min–max). On a machine\n"+
		"shared with other work the rates follow each process's share of the cores (a proxy is one more process to\n"+
		"schedule, which can make direct slower than proxied): compare the CPU column.\n\n", o.conns, o.rounds)
	fmt.Fprintf(&b, "| target | loops/threads | handshakes/s | proxy CPU µs per handshake | errors |\n|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| direct (no proxy) | - | %s | - | %d |\n", spread(direct, func(r result) float64 { return r.rate }, "%.0f"), sumErrors(direct))
	for _, n := range o.loops {
		for _, proxy := range []string{"tierlb", "haproxy"} {
			rs := results[key{proxy, n}]
			name := "tierlb (`sni`)"
			if proxy == "haproxy" {
				name = "HAProxy 2.6 (`req.ssl_sni`)"
			}
			fmt.Fprintf(&b, "| %s | %d | %s | %s | %d |\n", name, n,
				spread(rs, func(r result) float64 { return r.rate }, "%.0f"),
				spread(rs, func(r result) float64 { return r.cpuPer * 1e6 }, "%.1f"), sumErrors(rs))
		}
	}
	fmt.Print("\n" + b.String())
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(b.String()), 0o644); err != nil {
			return err
		}
		fmt.Println("written to", o.out)
	}
	return nil
}

// runProxy starts one proxy with n loops in front of the backends, loads
// it, and stops it.
func runProxy(o options, proxy string, n int, tierlb, tmp string, backends map[string]*backend, client *tls.Config) (result, error) {
	port, err := freePort()
	if err != nil {
		return result{}, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	app, api := backends["app.example.com"].addr(), backends["api.example.com"].addr()
	var cmd *exec.Cmd
	switch proxy {
	case "tierlb":
		cfg := filepath.Join(tmp, "tierlb.yaml")
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`admin: {listen: ""}
log: {access: false, level: warn}
engine: {loops: %d}
docker: {enabled: "false"}
services:
  - {name: app, listen: %q, sni: [app.example.com], backends: {static: [%q]}, health: {type: none}}
  - {name: api, listen: %q, sni: [api.example.com], backends: {static: [%q]}, health: {type: none}}
`, n, addr, app, addr, api)), 0o644); err != nil {
			return result{}, err
		}
		cmd = exec.Command(tierlb, "run", "--config", cfg)
	case "haproxy":
		cfg := filepath.Join(tmp, "haproxy.cfg")
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`global
    nbthread %d

defaults
    mode tcp
    timeout connect 2s
    timeout client 30s
    timeout server 30s

frontend tls
    bind %s
    tcp-request inspect-delay 5s
    tcp-request content accept if { req.ssl_hello_type 1 }
    use_backend app if { req.ssl_sni -i app.example.com }
    use_backend api if { req.ssl_sni -i api.example.com }

backend app
    server app %s

backend api
    server api %s
`, n, addr, app, api)), 0o644); err != nil {
			return result{}, err
		}
		cmd = exec.Command("haproxy", "-db", "-f", cfg)
	}
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	if err := waitTCP(addr, 10*time.Second); err != nil {
		return result{}, err
	}
	pid := cmd.Process.Pid
	before, err := cpuTicks(pid)
	if err != nil {
		return result{}, err
	}
	r, err := load(context.Background(), o, addr, backends, client)
	after, cerr := cpuTicks(pid)
	if err == nil {
		err = cerr
	}
	if r.count > 0 {
		r.cpuPer = float64(after-before) / clkTck / float64(r.count)
	}
	return r, err
}

// result is one load run.
type result struct {
	count  int64
	errors int64
	rate   float64 // handshakes per second
	cpuPer float64 // proxy CPU seconds per handshake
}

// load runs o.conns clients for o.duration against addr ("" dials each
// backend directly) and counts completed handshakes.
func load(ctx context.Context, o options, addr string, backends map[string]*backend, client *tls.Config) (result, error) {
	names := []string{"app.example.com", "api.example.com"}
	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	var done, failed atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for w := range o.conns {
		wg.Go(func() {
			for i := w; ctx.Err() == nil; i++ {
				name := names[i%2]
				target := addr
				if target == "" {
					target = backends[name].addr()
				}
				if err := handshake(target, name, client); err != nil {
					if ctx.Err() != nil {
						return
					}
					failed.Add(1)
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					continue
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	r := result{count: done.Load(), errors: failed.Load()}
	r.rate = float64(r.count) / time.Since(start).Seconds()
	if r.count == 0 {
		return r, fmt.Errorf("no handshake completed: %v", firstErr)
	}
	return r, nil
}

// handshake is one connection: a full handshake naming name, checked
// against name's certificate, and the backend's answer.
func handshake(addr, name string, base *tls.Config) error {
	cfg := base.Clone()
	cfg.ServerName = name
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != name+"\n" {
		return fmt.Errorf("%s answered for %q", strings.TrimSpace(line), name)
	}
	return nil
}

// backend is a TLS server for one name with its own certificate.
type backend struct {
	ln   net.Listener
	cert *x509.Certificate
}

func (b *backend) addr() string { return b.ln.Addr().String() }

func startBackend(name string) (*backend, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}}, SessionTicketsDisabled: true}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := io.WriteString(c, name+"\n"); err != nil {
					return
				}
				io.Copy(io.Discard, c)
			}()
		}
	}()
	return &backend{ln: ln, cert: leaf}, nil
}

// clkTck is the kernel's USER_HZ, the unit of /proc/PID/stat's times.
const clkTck = 100

// cpuTicks reads a process's user+system time in clock ticks, threads
// included.
func cpuTicks(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command field", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	return u + st, nil
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

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// spread formats the median and the range of f over rs.
func spread(rs []result, f func(result) float64, format string) string {
	if len(rs) == 0 {
		return "-"
	}
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	med := v[len(v)/2]
	if len(v)%2 == 0 {
		med = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	if len(v) == 1 {
		return fmt.Sprintf(format, med)
	}
	return fmt.Sprintf(format+" ("+format+"–"+format+")", med, v[0], v[len(v)-1])
}

func sumErrors(rs []result) int64 {
	var n int64
	for _, r := range rs {
		n += r.errors
	}
	return n
}

func numCPU() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\nprocessor") + 1
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
