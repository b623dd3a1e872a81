// Command scale measures tierlb's Docker discovery at scale against a fake
// Docker engine (internal/fakeengine) that serves thousands of containers
// that do not exist, each reachable at its own loopback address:
//
//	go run ./bench/scale                                  # K = 0, 1,000 and 10,000 over 100 services
//	go run ./bench/scale -k 10000 -rounds 3               # one K, three rounds
//	go run ./bench/scale -k 10000 -storm 0 -health tcp    # what tcp checks cost at rest
//	go run ./bench/scale -swarm -k 10000 -rest 5s -cpu-for 10s   # Swarm tasks, a churn, the polls at rest
//
// With -swarm the K backends are the tasks of S Swarm services on -nodes
// nodes of a fake manager, and instead of the storm a churn of Swarm
// operations (scale up/down, rolling update steps, a node drain, a service
// removal) is played at -churn operations/s for -storm-for.
//
// Each run builds on a fresh tierlb process: time from exec to every
// backend routed, RSS once routed (the highest over 3 s after a services API
// read and two /metrics scrapes), an event storm (container events/s for
// a duration) with the lag of every change it causes, tierlb's CPU during
// it, and the Engine API requests tierlb made at start, during the storm
// and at rest (a window that includes one 30 s resync). The load is the
// storm's events and a few connections per sampled service, all on
// loopback.
package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tierlb/tierlb/internal/scale"
	"github.com/tierlb/tierlb/internal/testkit"
)

func main() {
	var (
		ks       = flag.String("k", "0,1000,10000", "running containers per run, comma-separated")
		services = flag.Int("s", 100, "services the containers are spread over")
		rate     = flag.Int("storm", 1000, "storm rate in container events/s (0: no storm)")
		stormFor = flag.Duration("storm-for", 10*time.Second, "storm duration")
		rest     = flag.Duration("rest", 0, "window at rest after the storm in which requests are counted (32s includes a resync)")
		health   = flag.String("health", "none", "health type of every service: none or tcp")
		rounds   = flag.Int("rounds", 1, "runs per K")
		cpuFor   = flag.Duration("cpu-for", 0, "measure tierlb's CPU at rest for this long, last (e.g. the cost of tcp checks)")
		profile  = flag.String("profile", "", "write tierlb's CPU profile of the storm to this file (last run's)")
		heap     = flag.String("heap-profile", "", "write tierlb's heap profile once routed to this file (last run's)")
		sw       = swarmFlags{}
	)
	flag.BoolVar(&sw.on, "swarm", false, "discover Swarm tasks instead of containers")
	flag.IntVar(&sw.nodes, "nodes", 20, "Swarm nodes (-swarm)")
	flag.IntVar(&sw.churn, "churn", 20, "Swarm operations per second (-swarm; 0: none)")
	flag.DurationVar(&sw.poll, "swarm-poll", time.Second, "tierlb's docker.swarm_poll (-swarm)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *ks, *services, *rate, *stormFor, *rest, *health, *rounds, *cpuFor, *profile, *heap, sw); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

type swarmFlags struct {
	on           bool
	nodes, churn int
	poll         time.Duration
}

func run(ctx context.Context, ks string, services, rate int, stormFor, rest time.Duration, health string, rounds int, cpuFor time.Duration, profile, heap string, sw swarmFlags) error {
	bin, remove, err := testkit.BuildBinary("./cmd/tierlb")
	if err != nil {
		return err
	}
	defer remove()
	var empty []int64        // RSS at K = 0, for the cost per backend
	rss := map[int][]int64{} // every run's RSS by K, for the summary
	var order []int          // the Ks in the order run
	for _, field := range strings.Split(ks, ",") {
		k, err := strconv.Atoi(strings.TrimSpace(field))
		if err != nil || k < 0 {
			return fmt.Errorf("-k: %q is not a container count", field)
		}
		for r := range rounds {
			p := scale.Params{Binary: bin, Containers: k, Services: services, Health: health, Samples: 10,
				StormRate: rate, StormFor: stormFor, RestFor: rest, CPUFor: cpuFor, Profile: profile, HeapProfile: heap,
				Progress: func(s string) { fmt.Fprintf(os.Stderr, "  [k=%d round %d] %s\n", k, r+1, s) }}
			if sw.on {
				p.Swarm, p.Nodes, p.SwarmPoll, p.StormRate = true, sw.nodes, sw.poll, 0
				p.ChurnRate, p.ChurnFor, p.RoutedWithin = sw.churn, stormFor, 5*time.Minute
			} else if k == 0 {
				p.StormRate = 0
			} else if rate > 0 {
				// Enough stopped containers for the storm's starts.
				p.Stopped = max(100, int(float64(rate)*stormFor.Seconds()/16)+10)
			}
			f, err := scale.Run(ctx, p)
			if err != nil {
				return fmt.Errorf("k=%d: %w", k, err)
			}
			if k == 0 {
				empty = append(empty, f.RSS)
			}
			if rss[k] == nil {
				order = append(order, k)
			}
			rss[k] = append(rss[k], f.RSS)
			report(f, empty)
		}
	}
	summarize(order, rss)
	return nil
}

// summarize prints, when some K ran more than once beside K = 0, each K's
// median RSS and the cost per backend between medians. A run's own
// figure (against the lowest and highest K = 0 reading) is as wide as
// K = 0's spread, which at 1,000 backends is as large as the difference:
// the medians of several runs are the steadier reading.
func summarize(order []int, rss map[int][]int64) {
	base := rss[0]
	if len(base) < 2 {
		return
	}
	fmt.Println("summary (medians over the runs; RSS in MiB):")
	for _, k := range order {
		r := rss[k]
		fmt.Printf("  K=%d: %d runs, RSS median %.1f (%.1f–%.1f)", k, len(r), mib(median(r)), mib(slices.Min(r)), mib(slices.Max(r)))
		if k > 0 {
			fmt.Printf(", %.0f B per backend over K=0's median", float64(median(r)-median(base))/float64(k))
		}
		fmt.Println()
	}
}

func median(v []int64) int64 {
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// report prints a run's figures; empty are the RSS readings at K = 0 so
// far, from which a run with containers gets its cost per backend.
func report(f *scale.Figures, empty []int64) {
	fmt.Printf("K=%d S=%d  routed in %s (tierlb CPU %s)  RSS %.1f MiB, Go heap in use %.1f MiB", f.Containers, f.Services,
		f.Routed.Round(time.Millisecond), f.RoutedCPU, float64(f.RSS)/(1<<20), float64(f.HeapInuse)/(1<<20))
	if f.Containers > 0 && len(empty) > 0 {
		lo, hi := slices.Min(empty), slices.Max(empty)
		fmt.Printf(" (%.0f–%.0f B per backend over the RSS at K=0)",
			float64(f.RSS-hi)/float64(f.Containers), float64(f.RSS-lo)/float64(f.Containers))
	}
	fmt.Println()
	fmt.Printf("  requests at start: %s (%.1f MB of responses)\n", requests(f.StartRequests), float64(sum64(f.StartBytes))/1e6)
	if s := f.Storm; s != nil {
		fmt.Printf("  storm: %d container events in %s (%.0f/s), %d changes: lag p50 %s p90 %s p99 %s max %s, %d over 100ms, %d missed; CPU %s (%.0f%% of a core); %d events dropped\n",
			s.Events, s.For.Round(time.Millisecond), float64(s.Events)/s.For.Seconds(), s.Changes,
			s.Quantile(0.5).Round(time.Microsecond*100), s.Quantile(0.9).Round(time.Microsecond*100),
			s.Quantile(0.99).Round(time.Microsecond*100), s.Quantile(1).Round(time.Microsecond*100),
			s.Over(100*time.Millisecond), len(s.Missed), s.CPU, 100*s.CPU.Seconds()/s.For.Seconds(), s.Dropped)
		fmt.Printf("  requests in the storm: %s (%.2f per event)\n", requests(s.Requests), float64(sum(s.Requests))/float64(max(1, s.Events)))
	}
	if s := f.Churn; s != nil {
		fmt.Printf("  churn: %d Swarm operations in %s, %d service/node events, %d changes: lag p50 %s p90 %s p99 %s max %s, %d over 100ms, %d missed; CPU %s (%.0f%% of a core over the churn)\n",
			s.Ops, s.For.Round(time.Millisecond), s.Events, s.Changes,
			s.Quantile(0.5).Round(time.Millisecond), s.Quantile(0.9).Round(time.Millisecond),
			s.Quantile(0.99).Round(time.Millisecond), s.Quantile(1).Round(time.Millisecond),
			s.Over(100*time.Millisecond), len(s.Missed), s.CPU, 100*s.CPU.Seconds()/s.For.Seconds())
		for _, kind := range []string{"added", "draining", "removed"} {
			fmt.Printf("    %-8s %5d: p50 %s p99 %s max %s\n", kind, len(s.ByKind[kind]), s.KindQuantile(kind, 0.5).Round(time.Millisecond),
				s.KindQuantile(kind, 0.99).Round(time.Millisecond), s.KindQuantile(kind, 1).Round(time.Millisecond))
		}
		fmt.Printf("  requests in the churn (and until its changes were applied): %s\n", requests(s.Requests))
	}
	if f.RestFor > 0 {
		fmt.Printf("  requests at rest over %s: %s\n", f.RestFor, requests(f.RestRequests))
		if n := f.RestRequests["GET /tasks"]; n > 0 {
			fmt.Printf("  task lists at rest: %.2f/s, %.1f MB each (%.0f B per task)\n", float64(n)/f.RestFor.Seconds(),
				float64(f.RestBytes["GET /tasks"])/float64(n)/1e6, float64(f.RestBytes["GET /tasks"])/float64(n)/float64(max(1, f.Containers)))
		}
	}
	if f.RestCPUFor > 0 {
		fmt.Printf("  CPU at rest over %s: %s (%.1f%% of a core)\n", f.RestCPUFor, f.RestCPU, 100*f.RestCPU.Seconds()/f.RestCPUFor.Seconds())
	}
	for _, w := range f.Warnings {
		fmt.Printf("  tierlb warned: %s\n", w)
	}
}

func requests(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func sum64(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}
