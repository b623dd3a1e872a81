// Command bench compares tierlb with a direct connection, HAProxy and nginx
// on this machine, in the same run, and writes the table and chart to
// bench/results/.
//
//	go run ./bench                     # 3 interleaved rounds, 10 s per load run
//	go run ./bench --quick             # smoke run: 1 round, 2 s each, to bench/results/quick
//	go run ./bench --scenarios keepalive,bulk --targets direct,tierlb,haproxy
//	go run ./bench --baseline main    # tierlb of main beside the work tree's
//
// It needs wrk, haproxy, nginx with the stream module, iperf3 and strace
// (apt-get install -y wrk haproxy nginx libnginx-mod-stream iperf3 strace),
// builds tierlb and whoami itself, and runs everything on 127.0.0.1.
// Every child is stopped by PID at the end, also on error and ctrl-c.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// options are the command line.
type options struct {
	Rounds     int           `json:"rounds"`
	Duration   time.Duration `json:"duration"`
	Scenarios  []string      `json:"scenarios"`
	Targets    []string      `json:"targets"`
	Out        string        `json:"-"`
	Quick      bool          `json:"quick"`
	IdleMax    int           `json:"idle_max"`
	CliffConns []int         `json:"cliff_conns"`
	// Threads is wrk's thread count.
	Threads int `json:"threads"`
	// ProxyThreads are the settings each proxy runs at: HAProxy nbthread,
	// nginx worker_processes, tierlb event loops.
	ProxyThreads []int `json:"proxy_threads,omitempty"`
	// Baseline is a git revision whose tierlb runs beside the work tree's,
	// in the same rounds: a before/after comparison on one machine state.
	Baseline string `json:"baseline,omitempty"`
	// Once are scenarios run in the first round only, to fit a run into
	// less time: syscall counts, for one, do not vary between rounds.
	Once    []string `json:"once,omitempty"`
	KeepTmp bool     `json:"-"`
	// Report re-renders results.md and results.svg from a results.json.
	Report string `json:"-"`
	// Note is free text for the results, e.g. what else ran on the machine.
	Note string `json:"note,omitempty"`
	// UDPClients is the query scenario's client sockets; UDPRate and UDPLen
	// the steady stream's iperf3 -b and -l.
	UDPClients int    `json:"udp_clients,omitempty"`
	UDPRate    string `json:"udp_rate,omitempty"`
	UDPLen     int    `json:"udp_len,omitempty"`
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	opts, err := parseFlags(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	if opts.Report != "" {
		if err := rerender(opts.Report); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	scenarios, targets, err := selectWork(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	e, err := setup(ctx, opts, log, scenarios, targets)
	if e != nil {
		defer e.cleanup()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		if errors.Is(err, errMissingTools) {
			return 1
		}
		return 2
	}
	checkTierlb(ctx, e, targets)
	if opts.Out == "" {
		opts.Out = filepath.Join(e.root, "bench", "results")
		if opts.Quick {
			opts.Out = filepath.Join(opts.Out, "quick")
		}
	}

	res := &results{
		Date:       time.Now(),
		Command:    "go run ./bench " + strings.Join(args, " "),
		Options:    opts,
		Machine:    describeMachine(nofileLimit()),
		Versions:   e.tools.Versions,
		Settings:   settings(opts, e),
		LoadBefore: loadAvg1(),
	}
	res.Command = strings.TrimSpace(res.Command)
	for _, t := range targets {
		res.Targets = append(res.Targets, targetInfo{Name: t.Name, Label: t.Label, Family: t.Family,
			Threads: t.Threads, Setting: t.Setting, Default: t.Default, Unavailable: t.Unavailable})
	}
	for _, s := range scenarios {
		res.Scenarios = append(res.Scenarios, scenarioInfo{Name: s.Name, Desc: s.Desc})
	}
	res.Runs = runRounds(ctx, e, scenarios, targets)
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "bench: interrupted; no results written")
		return 130
	}
	if err := writeResults(opts.Out, res); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	fmt.Print(markdown(res))
	log.Info("results written", "dir", opts.Out)
	return 0
}

// runRounds runs A B C D E for each scenario, round after round, so slow
// drifts of the shared machine hit every target alike. Each round starts
// one target further on (B C D E A, then C D E A B, ...): what a run leaves
// behind on the machine (sockets in TIME_WAIT, slab caches, a warm page
// cache) would otherwise always favour or burden the same neighbour, and
// machine-wide readings such as kernel slab showed it.
func runRounds(ctx context.Context, e *env, scenarios []*scenario, targets []*target) []runRecord {
	var runs []runRecord
	for round := 1; round <= e.opts.Rounds; round++ {
		for _, s := range scenarios {
			if round > 1 && slices.Contains(e.opts.Once, s.Name) {
				continue
			}
			cred, credErr := credFor(s)
			for _, t := range rotate(targets, round-1) {
				if !s.runsOn(t) {
					continue
				}
				if ctx.Err() != nil {
					return runs
				}
				rec := runRecord{Round: round, Scenario: s.Name, Target: t.Name, Start: time.Now(), Load1: loadAvg1()}
				e.log.Info("run", "round", round, "scenario", s.Name, "target", t.Name, "load1", rec.Load1)
				var err error
				mark := markCPU(e)
				if credErr != nil {
					err = credErr
				} else {
					rec.outcome, err = runOne(ctx, e, s, t, cred)
				}
				if share := othersShare(mark, markCPU(e)); share >= 0 {
					rec.OthersCPU = &share
				}
				rec.Seconds = time.Since(rec.Start).Seconds()
				switch {
				case errors.Is(err, errSkipped):
					rec.note("%v", err)
					e.log.Warn("run skipped", "scenario", s.Name, "target", t.Name, "why", err)
				case err != nil:
					rec.Err = err.Error()
					e.log.Warn("run failed", "scenario", s.Name, "target", t.Name, "err", err)
				}
				runs = append(runs, rec)
			}
		}
	}
	return runs
}

// rotate returns ts starting at index k mod len(ts).
func rotate[T any](ts []T, k int) []T {
	if len(ts) == 0 {
		return ts
	}
	k %= len(ts)
	return append(ts[k:len(ts):len(ts)], ts[:k]...)
}

func runOne(ctx context.Context, e *env, s *scenario, t *target, cred *syscall.Credential) (outcome, error) {
	r, err := startTarget(ctx, e, t, s.Front, s.Services, cred)
	if err != nil {
		return outcome{}, err
	}
	defer r.stop()
	return s.Run(ctx, e, r)
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var o options
	var scen, targ, cliff, proxyThreads, defThreads, once string
	for n := 1; n <= runtime.NumCPU(); n++ {
		defThreads += "," + strconv.Itoa(n)
	}
	fs.IntVar(&o.Rounds, "rounds", 3, "interleaved rounds")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "length of each load run")
	fs.StringVar(&scen, "scenarios", "all", "comma list of: "+strings.Join(scenarioNames(), ",")+" (udp and services name their groups)")
	fs.StringVar(&targ, "targets", "all", "comma list of: direct,tierlb,tierlb-copy,haproxy,nginx,naive-go,splice-relay,epoll-relay,uring-relay "+
		"(a proxy at every --proxy-threads setting) or one setting's column name, e.g. haproxy-nbthread1")
	fs.StringVar(&o.Out, "out", "", "results directory (default bench/results, bench/results/quick with --quick)")
	fs.BoolVar(&o.Quick, "quick", false, "short smoke run: 1 round, 2s runs, fewer connections")
	fs.IntVar(&o.IdleMax, "idle-max", 0, "idle connections to try at most (default: what the fd limit allows)")
	fs.StringVar(&cliff, "cliff-conns", "16,64,128,256", "connection counts of the pipe-budget scenario")
	fs.IntVar(&o.Threads, "threads", runtime.NumCPU(), "wrk threads")
	fs.StringVar(&proxyThreads, "proxy-threads", defThreads[1:], "settings each proxy runs at: HAProxy nbthread, nginx worker_processes, tierlb event loops")
	fs.StringVar(&once, "once", "", "scenarios to run in the first round only (e.g. strace, whose counts do not vary)")
	fs.StringVar(&o.Baseline, "baseline", "", "git revision whose tierlb also runs, in the same rounds (before/after)")
	fs.BoolVar(&o.KeepTmp, "keep-tmp", false, "keep the temp dir with configs and proxy logs")
	fs.StringVar(&o.Report, "report", "", "only re-render results.md and results.svg next to this results.json")
	fs.StringVar(&o.Note, "note", "", "free text recorded in the results (what else the machine was doing)")
	fs.IntVar(&o.UDPClients, "udp-clients", 64, "client sockets of the UDP query scenario, one query in flight each")
	fs.StringVar(&o.UDPRate, "udp-rate", "100M", "iperf3 -b of the steady UDP stream: its fixed rate, bits/s")
	fs.IntVar(&o.UDPLen, "udp-len", 1400, "iperf3 -l of the steady UDP stream: datagram payload bytes")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.Quick {
		if !set["rounds"] {
			o.Rounds = 1
		}
		if !set["duration"] {
			o.Duration = 2 * time.Second
		}
		if !set["cliff-conns"] {
			cliff = "16,128"
		}
		if !set["idle-max"] {
			o.IdleMax = 5000
		}
	}
	var err error
	if o.CliffConns, err = parseInts(cliff); err != nil {
		return o, fmt.Errorf("--cliff-conns: %w", err)
	}
	if o.ProxyThreads, err = parseInts(proxyThreads); err != nil || len(o.ProxyThreads) == 0 {
		return o, fmt.Errorf("--proxy-threads %q: want a comma list of positive counts", proxyThreads)
	}
	o.ProxyThreads = slices.Compact(o.ProxyThreads)
	o.Scenarios, o.Targets, o.Once = expandScenarios(splitList(scen)), splitList(targ), expandScenarios(splitList(once))
	for _, s := range o.Once {
		if !slices.Contains(scenarioNames(), s) {
			return o, fmt.Errorf("--once %q: not a scenario (%s)", s, strings.Join(scenarioNames(), ","))
		}
	}
	// Half the fd limit: the proxy holds two descriptors per connection
	// under the same RLIMIT_NOFILE, so it cannot hold more.
	limit := int(nofileLimit())
	if o.IdleMax == 0 || o.IdleMax > (limit-200)/2 {
		o.IdleMax = (limit - 200) / 2
	}
	if o.IdleMax < idleFirst {
		o.IdleMax = idleFirst
	}
	if o.Rounds < 1 || o.Duration < time.Second || o.Threads < 1 || o.UDPClients < 1 || o.UDPLen < 1 {
		return o, errors.New("--rounds, --threads, --udp-clients, --udp-len must be at least 1 and --duration at least 1s")
	}
	return o, nil
}

func selectWork(o options) ([]*scenario, []*target, error) {
	var scenarios []*scenario
	for _, s := range allScenarios() {
		if slices.Contains(o.Scenarios, "all") || slices.Contains(o.Scenarios, s.Name) {
			scenarios = append(scenarios, s)
		}
	}
	targets := selectTargets(allTargets(o.ProxyThreads, runtime.NumCPU(), o.Baseline), o.Targets)
	if len(scenarios) == 0 || len(targets) == 0 {
		return nil, nil, fmt.Errorf("no scenario or target selected by %v / %v", o.Scenarios, o.Targets)
	}
	return scenarios, targets, nil
}

// settings records the knobs that make the comparison fair or not.
func settings(o options, e *env) map[string]string {
	var counts, other []string
	for _, n := range o.ProxyThreads {
		counts = append(counts, strconv.Itoa(n))
		if n != runtime.NumCPU() {
			other = append(other, strconv.Itoa(n))
		}
	}
	each := strings.Join(counts, ", ")
	loops := fmt.Sprintf("default (no setting: one per core, %d here)", runtime.NumCPU())
	if len(other) > 0 {
		loops += fmt.Sprintf(" and %s, given as %s", strings.Join(other, ", "), e.tierlb.loopSetting("N"))
	}
	m := map[string]string{
		"haproxy nbthread":       each,
		"haproxy splice modes":   "splice both ways (option splice-request, splice-response), option splice-auto, nosplice; each at every nbthread",
		"udp queries":            fmt.Sprintf("%d client sockets, one query in flight each", o.UDPClients),
		"udp stream":             fmt.Sprintf("iperf3 -u -b %s -l %d", o.UDPRate, o.UDPLen),
		"service-count load":     fmt.Sprintf("wrk, %d threads of one keep-alive connection each, thread i to port i mod the port count", svcConns),
		"nginx worker_processes": each,
		"tierlb event loops":     loops,
		"tierlb logging":         "access log off (log.access: false), level warn",
		"tierlb metrics":         "on: counted as always, admin listener with /metrics on a free 127.0.0.1 port, not scraped during runs",
		"wrk threads":            strconv.Itoa(o.Threads),
		"small-request conns":    strconv.Itoa(smallConns),
		"bulk conns":             strconv.Itoa(bulkConns),
		"idle max tried":         strconv.Itoa(o.IdleMax),
		"backend":                "cmd/whoami (one instance, 127.0.0.1)",
	}
	if e.base != nil {
		m["tierlb baseline"] = fmt.Sprintf("%s, built from %s; event loops: default and %s, given as %s",
			e.base.name, o.Baseline, strings.Join(other, ", "), e.base.loopSetting("N"))
	}
	return m
}

func scenarioNames() []string {
	var out []string
	for _, s := range allScenarios() {
		out = append(out, s.Name)
	}
	return out
}

func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive count", f)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

// nofileLimit is this process's RLIMIT_NOFILE (Go raises the soft limit to
// the hard one at start; children inherit the original).
func nofileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 1024
	}
	return rl.Cur
}
