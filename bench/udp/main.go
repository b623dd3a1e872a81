// Command udp benchmarks tierlb's UDP services against nginx stream (`udp`,
// `proxy_responses`) and against talking to the backends directly, in one
// run, on 127.0.0.1 only:
//
//	go run ./bench/udp                     # 3 rotated rounds, 10 s per load run
//	go run ./bench/udp --quick             # 1 round, 2 s runs, results in bench/results/quick
//
// Two loads: iperf3 -u at a fixed rate through each target (received MB/s
// and loss), and DNS-style request/response, each query a session of its
// own (tierlb udp.responses: 1, nginx proxy_responses 1) against
// `whoami --dns` (queries/s, proxy CPU seconds per 100k datagrams). The
// results go to udp.md and udp.json beside the TCP bench's results.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"
)

type options struct {
	rounds   int
	duration time.Duration
	rate     string
	size     int
	clients  int
	out      string
	keepTmp  bool
}

func main() {
	os.Exit(run())
}

func run() int {
	var o options
	quick := flag.Bool("quick", false, "1 round of 2 s runs, results in OUT/quick")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds, rotated so no target always runs first")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each load run")
	flag.StringVar(&o.rate, "rate", "100M", "iperf3 -b: the fixed offered rate, bits/s")
	flag.IntVar(&o.size, "len", 1400, "iperf3 -l: datagram payload bytes")
	flag.IntVar(&o.clients, "clients", 32, "request/response client sockets, one query in flight each")
	flag.StringVar(&o.out, "out", "bench/results", "results directory")
	flag.BoolVar(&o.keepTmp, "keep-tmp", false, "keep configs and logs")
	flag.Parse()
	if *quick {
		o.rounds, o.duration, o.out = 1, 2*time.Second, filepath.Join(o.out, "quick")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bench(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench/udp:", err)
		return 1
	}
	return 0
}

func bench(ctx context.Context, o options) error {
	tmp, err := os.MkdirTemp("", "tierlb-udpbench-")
	if err != nil {
		return err
	}
	if o.keepTmp {
		fmt.Println("temporary files in", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	e, err := setup(ctx, tmp)
	if err != nil {
		return err
	}
	defer e.procs.stopAll()
	rep := report{
		Started: time.Now().UTC(), Cores: runtime.NumCPU(), Rounds: o.rounds,
		Duration: o.duration.String(), Rate: o.rate, Size: o.size, Clients: o.clients,
		Versions: e.versions,
	}
	targets := []string{"direct", "tierlb", "nginx"}
	for round := range o.rounds {
		for i := range targets {
			name := targets[(round+i)%len(targets)]
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r, err := runTarget(ctx, e, o, name, round)
			if err != nil {
				r.Error = err.Error()
				fmt.Printf("round %d %s: %v\n", round+1, name, err)
			} else {
				fmt.Printf("round %d %-6s iperf %.1f MB/s loss %.2f%% | rr %.0f q/s, %.3f CPU s/100k datagrams (load %.1f)\n",
					round+1, name, r.IperfMBps, r.IperfLossPct, r.QPS, r.CPUPer100k, r.Load1)
			}
			rep.Results = append(rep.Results, r)
		}
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(o.out, "udp.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	md := rep.markdown()
	fmt.Print(md)
	return os.WriteFile(filepath.Join(o.out, "udp.md"), []byte(md), 0o644)
}

// runTarget starts one target fresh, runs both loads through it and stops
// it.
func runTarget(ctx context.Context, e *env, o options, name string, round int) (result, error) {
	r := result{Target: name, Round: round, Load1: loadAvg()}
	fr, err := e.start(ctx, name, round)
	if err != nil {
		return r, err
	}
	defer fr.stop()
	ip, err := runIperfUDP(ctx, e, fr.iperfPort, o)
	if err != nil {
		return r, fmt.Errorf("iperf3 -u: %w", err)
	}
	r.IperfMBps, r.IperfLossPct = ip.MBps, ip.LossPct
	r.IperfCPU = fr.cpuSince()
	rr, err := runQueries(ctx, fr.dnsPort, o.clients, o.duration)
	if err != nil {
		return r, fmt.Errorf("queries: %w", err)
	}
	cpu := fr.cpuSince()
	r.QPS, r.Lost = float64(rr.answered)/rr.seconds, rr.lost
	if fr.measured() && rr.answered > 0 {
		r.RRCPU = cpu
		r.CPUPer100k = cpu / float64(2*rr.answered) * 1e5
	}
	if r.Lost > rr.answered/100 {
		return r, errors.New("more than 1% of queries unanswered")
	}
	return r, nil
}
