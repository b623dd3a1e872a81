// Command checks measures what active health checks cost tierlb and
// HAProxy: N loopback backends checked every 2 s by each proxy, side by
// side, with no traffic, and each proxy's CPU (its threads' run time from
// /proc/PID/task/*/schedstat) over the same steady window divided by the
// checks its backends saw in it.
//
//	go run ./bench/checks                          # tcp and http, 200 and 10,000 backends, 2 rounds
//	go run ./bench/checks -n 200 -checks tcp -rounds 1 -window 10s
//	go run ./bench/checks -proxies tierlb -pprof /tmp/checks.prof
//	go run ./bench/checks -together=false           # one proxy after the other
//
// Each proxy has its own backends: one listener on 0.0.0.0:PORT in this
// process serves every backend address (127.10.x.y) on that port: it
// accepts and answers an http check's request with 200. The SYNs that
// reach the port are counted every 25 ms, which gives the checks and their
// spread (the busiest 100 ms against the mean). Both proxies start fresh
// together, settle for -warmup (their first checks of every backend at
// once are not the steady state), then are measured over the same -window:
// on a shared machine, load that changes between two windows moves the
// ratio more than the proxies differ. HAProxy runs with nbthread 1 and
// `check inter` at the same interval; tierlb with its defaults (checks are
// not tied to engine.loops). Every child is stopped through its PID; all
// traffic is on 127.0.0.0/8 and bounded by the number of backends and the
// interval.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/checks:", err)
		os.Exit(1)
	}
}

type options struct {
	ns         []int
	checks     []string
	proxies    []string
	rounds     int
	warmup     time.Duration
	window     time.Duration
	interval   time.Duration
	perService int
	together   bool
	tierlb     string
	pprof      string
	out        string
}

func run() error {
	var o options
	ns := flag.String("n", "200,10000", "backend counts")
	checks := flag.String("checks", "tcp,http", "check types")
	proxies := flag.String("proxies", "tierlb,haproxy", "proxies to measure")
	flag.IntVar(&o.rounds, "rounds", 2, "rounds per proxy, check type and backend count")
	flag.DurationVar(&o.warmup, "warmup", 6*time.Second, "time from the proxy's start to the window")
	flag.DurationVar(&o.window, "window", 20*time.Second, "measured steady state")
	flag.DurationVar(&o.interval, "interval", 2*time.Second, "check interval")
	flag.IntVar(&o.perService, "per-service", 100, "backends per service (HAProxy: servers per listen section)")
	flag.BoolVar(&o.together, "together", true, "measure the proxies side by side in the same window (each with its own backends' port); false: one after the other")
	flag.StringVar(&o.tierlb, "tierlb", "", "tierlb binary (default: build ./cmd/tierlb)")
	flag.StringVar(&o.pprof, "pprof", "", "save tierlb's CPU profile over each window to this path (suffixed per run)")
	flag.StringVar(&o.out, "out", "bench/results/checks.md", "results file (markdown); \"\" prints only")
	flag.Parse()
	for _, s := range strings.Split(*ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 62500 {
			return fmt.Errorf("-n %q: want counts from 1 to 62500", *ns)
		}
		o.ns = append(o.ns, n)
	}
	o.checks = strings.Split(*checks, ",")
	for _, c := range o.checks {
		if c != "tcp" && c != "http" {
			return fmt.Errorf("-checks %q: want tcp, http", *checks)
		}
	}
	o.proxies = strings.Split(*proxies, ",")
	for _, p := range o.proxies {
		if p != "tierlb" && p != "haproxy" {
			return fmt.Errorf("-proxies %q: want tierlb, haproxy", *proxies)
		}
	}
	if o.window < 10*bucketWidth || o.rounds < 1 || o.perService < 1 {
		return errors.New("-window must be at least 1s, -rounds and -per-service at least 1")
	}
	if slices.Contains(o.proxies, "haproxy") {
		if _, err := exec.LookPath("haproxy"); err != nil {
			return errors.New("haproxy not found: apt-get install -y haproxy")
		}
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
		fmt.Printf("open-file limit %d (hard %d)\n", lim.Cur, lim.Max)
	}

	tmp, err := os.MkdirTemp("", "tierlb-checks-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if o.tierlb == "" && slices.Contains(o.proxies, "tierlb") {
		o.tierlb = filepath.Join(tmp, "tierlb")
		build := exec.Command("go", "build", "-o", o.tierlb, "./cmd/tierlb")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("build tierlb: %v\n%s", err, out)
		}
	}
	// Each proxy has its own backends' port and SYN counter, so that both
	// can be measured in the same window: on a shared machine, load that
	// changes between two windows moves a ratio more than the proxies do.
	srvs := map[string]*backendServer{}
	synss := map[string]*synCounter{}
	for _, proxy := range o.proxies {
		srv, err := startBackendServer()
		if err != nil {
			return err
		}
		defer srv.close()
		syns, err := newSynCounter(srv.port())
		if err != nil {
			return err
		}
		defer syns.close()
		srvs[proxy], synss[proxy] = srv, syns
	}

	type key struct {
		proxy, check string
		n            int
	}
	results := map[key][]result{}
	ratios := map[key][]float64{} // tierlb ÷ HAProxy in the same window, under key proxy "tierlb"
	for _, check := range o.checks {
		for _, n := range o.ns {
			for round := range o.rounds {
				order := slices.Clone(o.proxies)
				if round%2 == 1 {
					slices.Reverse(order)
				}
				rs := make([]result, len(order))
				errs := make([]error, len(order))
				var wg sync.WaitGroup
				for i, proxy := range order {
					s := setup{check: check, backends: n, perService: o.perService, interval: o.interval, port: srvs[proxy].port()}
					prof := ""
					if o.pprof != "" && proxy == "tierlb" {
						prof = fmt.Sprintf("%s.%s-%d-%d", o.pprof, check, n, round+1)
					}
					one := func() {
						rs[i], errs[i] = measure(o, proxy, s, srvs[proxy], synss[proxy], tmp, prof)
					}
					if o.together {
						wg.Go(one)
					} else {
						one()
					}
				}
				wg.Wait()
				for i, proxy := range order {
					if errs[i] != nil {
						return fmt.Errorf("%s %s n=%d: %w", proxy, check, n, errs[i])
					}
					r := rs[i]
					fmt.Printf("%-7s %-4s n=%-5d round %d: %6.1f µs CPU per check, %6d checks (accepted %6d, metric %6.0f), busiest 100 ms at %.0f/s vs mean %.0f/s, TIME_WAITs made %d, load %s\n",
						proxy, check, n, round+1, r.cpuPer*1e6, r.checks, r.accepted, r.metric, r.peak, r.mean, r.timeWait, loadavg())
					results[key{proxy, check, n}] = append(results[key{proxy, check, n}], r)
				}
				if i, j := slices.Index(order, "tierlb"), slices.Index(order, "haproxy"); o.together && i >= 0 && j >= 0 {
					ratio := rs[i].cpuPer / rs[j].cpuPer
					fmt.Printf("        tierlb ÷ haproxy in the same window: %.2f\n", ratio)
					ratios[key{"tierlb", check, n}] = append(ratios[key{"tierlb", check, n}], ratio)
				}
			}
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "# Health checks: CPU per check, tierlb and HAProxy\n\n")
	fmt.Fprintf(&b, "`go run ./bench/checks -rounds %d -window %s -warmup %s -together=%t`, %s, %d cores, load average at the end %s.\n\n",
		o.rounds, o.window, o.warmup, o.together, time.Now().UTC().Format("2006-01-02 15:04 MST"), numCPU(), loadavg())
	when := "in turn, interleaved"
	if o.together {
		when = "side by side in the same windows, each with its own backends' port"
	}
	fmt.Fprintf(&b, "N loopback backends (127.10.x.y, one listener in the bench serves them all), %d per service, checked every\n"+
		"%s, no traffic. CPU is the run time of the proxy's threads (schedstat) over a %s window after %s of warm-up; checks are the\n"+
		"SYNs the backends' port received in the window (HAProxy's tcp checks never complete the handshake). Spread: the busiest 100 ms of the window against the mean\n"+
		"(1.0 is perfectly even). HAProxy %s, nbthread 1, `check inter %s`; http: `option httpchk GET /healthz`,\n"+
		"`http-check expect status 200`. The proxies ran %s. Medians of %d rounds (min–max); the last column\n"+
		"is tierlb's CPU per check over HAProxy's in the same window. The machine is shared with other work.\n\n",
		o.perService, o.interval, o.window, o.warmup, haproxyVersion(), o.interval, when, o.rounds)
	fmt.Fprintf(&b, "| check | backends | proxy | µs CPU per check | checks in window | busiest 100 ms / mean | TIME_WAITs made | tierlb ÷ HAProxy |\n|---|---|---|---|---|---|---|---|\n")
	for _, check := range o.checks {
		for _, n := range o.ns {
			for _, proxy := range o.proxies {
				rs := results[key{proxy, check, n}]
				ratio := "-"
				if rt := ratios[key{proxy, check, n}]; len(rt) > 0 {
					ratio = spread(rt, func(r float64) float64 { return r }, "%.2f")
				}
				fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %s |\n", check, n, proxy,
					spread(rs, func(r result) float64 { return r.cpuPer * 1e6 }, "%.1f"),
					spread(rs, func(r result) float64 { return float64(r.checks) }, "%.0f"),
					spread(rs, func(r result) float64 { return r.peak / r.mean }, "%.2f"),
					spread(rs, func(r result) float64 { return float64(r.timeWait) }, "%.0f"), ratio)
			}
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

// result is one measured window.
type result struct {
	checks   uint64  // SYNs the backends received: one per check
	metric   float64 // tierlb_health_checks_total's increase (tierlb only)
	cpuPer   float64 // proxy CPU seconds per check
	accepted int64   // connections the backends accepted (tcp checks reset before the last ACK are not)
	peak     float64 // checks per second in the busiest 100 ms
	mean     float64 // checks per second over the window
	timeWait int
}

// measure starts one proxy, waits out the warm-up, measures one window and
// stops the proxy.
func measure(o options, proxy string, s setup, srv *backendServer, syns *synCounter, tmp, prof string) (result, error) {
	var r result
	p, err := startProxy(proxy, o.tierlb, tmp, s, prof != "")
	if err != nil {
		return r, err
	}
	defer p.stop()
	time.Sleep(o.warmup)
	// The metric is a cross-check only: a scrape that fails (10 MB at
	// 10,000 backends, from a proxy that may be saturated) leaves it out.
	m0 := -1.0
	if proxy == "tierlb" {
		if m0, err = checksTotal(p.adminPort); err != nil {
			fmt.Fprintf(os.Stderr, "tierlb metrics before the window: %v\n", err)
			m0 = -1
		}
	}
	profErr := make(chan error, 1)
	if prof != "" {
		go func() { profErr <- fetchProfile(p.adminPort, o.window, prof) }()
	}
	pid := p.cmd.Process.Pid
	from := srv.accepted.Load()
	if _, err := syns.take(); err != nil {
		return r, err
	}
	t0, err := cpuTime(pid)
	if err != nil {
		return r, err
	}
	// The SYN counter is read every 100 ms: the busiest sample against the
	// window's mean rate is the spread. Each sample is divided by the time
	// it really covered, so a late tick does not look like a burst.
	start, last := time.Now(), time.Now()
	var acc uint64
	tick := time.NewTicker(bucketWidth / 4)
	for time.Since(start) < o.window {
		<-tick.C
		n, err := syns.take()
		if err != nil {
			tick.Stop()
			return r, err
		}
		r.checks += n
		acc += n
		// A sample closes once it covers at least 100 ms, so that a tick
		// that comes late, and the one right after it, make one sample.
		if now := time.Now(); now.Sub(last) >= bucketWidth {
			r.peak = max(r.peak, float64(acc)/now.Sub(last).Seconds())
			acc, last = 0, now
		}
	}
	tick.Stop()
	t1, err := cpuTime(pid)
	if err != nil {
		return r, err
	}
	elapsed := time.Since(start)
	r.mean = float64(r.checks) / elapsed.Seconds()
	r.accepted = srv.accepted.Load() - from
	r.timeWait = timeWaits(s.port, elapsed)
	if prof != "" {
		if err := <-profErr; err != nil {
			return r, fmt.Errorf("profile: %w", err)
		}
	}
	r.metric = -1
	if m0 >= 0 {
		if m1, err := checksTotal(p.adminPort); err == nil {
			r.metric = m1 - m0
		} else {
			fmt.Fprintf(os.Stderr, "tierlb metrics after the window: %v\n", err)
		}
	}
	if r.checks == 0 {
		return r, fmt.Errorf("no check reached the backends in the window; its log ends:\n%s", p.logTail())
	}
	r.cpuPer = (t1 - t0).Seconds() / float64(r.checks)
	return r, nil
}

// spread formats the median and the range of f over rs.
func spread[T any](rs []T, f func(T) float64, format string) string {
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

func haproxyVersion() string {
	out, err := exec.Command("haproxy", "-v").Output()
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(out))
	if len(f) < 3 {
		return "?"
	}
	return f[2]
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
