// Command scale measures tierlb's Docker discovery at scale against a fake
// Docker engine (internal/fakeengine) that serves thousands of containers
// that do not exist, each reachable at its own loopback address:
//
//	go run ./bench/scale                                  # K = 0, 1,000 and 10,000 over 100 services
//	go run ./bench/scale -k 10000 -rounds 3               # one K, three rounds
//	go run ./bench/scale -k 10000 -storm 0 -health tcp    # what tcp checks cost at rest
//
// Each run builds on a fresh tierlb process: time from exec to every
// backend routed, RSS once routed, an event storm (container events/s for
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
	)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *ks, *services, *rate, *stormFor, *rest, *health, *rounds, *cpuFor, *profile, *heap); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, ks string, services, rate int, stormFor, rest time.Duration, health string, rounds int, cpuFor time.Duration, profile, heap string) error {
	bin, remove, err := testkit.BuildBinary("./cmd/tierlb")
	if err != nil {
		return err
	}
	defer remove()
	for _, field := range strings.Split(ks, ",") {
		k, err := strconv.Atoi(strings.TrimSpace(field))
		if err != nil || k < 0 {
			return fmt.Errorf("-k: %q is not a container count", field)
		}
		for r := range rounds {
			p := scale.Params{Binary: bin, Containers: k, Services: services, Health: health, Samples: 10,
				StormRate: rate, StormFor: stormFor, RestFor: rest, CPUFor: cpuFor, Profile: profile, HeapProfile: heap,
				Progress: func(s string) { fmt.Fprintf(os.Stderr, "  [k=%d round %d] %s\n", k, r+1, s) }}
			if k == 0 {
				p.StormRate = 0
			} else if rate > 0 {
				// Enough stopped containers for the storm's starts.
				p.Stopped = max(100, int(float64(rate)*stormFor.Seconds()/16)+10)
			}
			f, err := scale.Run(ctx, p)
			if err != nil {
				return fmt.Errorf("k=%d: %w", k, err)
			}
			report(f)
		}
	}
	return nil
}

func report(f *scale.Figures) {
	fmt.Printf("K=%d S=%d  routed in %s (tierlb CPU %s)  RSS %.1f MiB, Go heap in use %.1f MiB", f.Containers, f.Services,
		f.Routed.Round(time.Millisecond), f.RoutedCPU, float64(f.RSS)/(1<<20), float64(f.HeapInuse)/(1<<20))
	if f.Containers > 0 {
		fmt.Printf(" (%.0f B per backend over all)", float64(f.RSS)/float64(f.Containers))
	}
	fmt.Println()
	fmt.Printf("  requests at start: %s\n", requests(f.StartRequests))
	if s := f.Storm; s != nil {
		fmt.Printf("  storm: %d container events in %s (%.0f/s), %d changes: lag p50 %s p90 %s p99 %s max %s, %d over 100ms, %d missed; CPU %s (%.0f%% of a core); %d events dropped\n",
			s.Events, s.For.Round(time.Millisecond), float64(s.Events)/s.For.Seconds(), s.Changes,
			s.Quantile(0.5).Round(time.Microsecond*100), s.Quantile(0.9).Round(time.Microsecond*100),
			s.Quantile(0.99).Round(time.Microsecond*100), s.Quantile(1).Round(time.Microsecond*100),
			s.Over(100*time.Millisecond), len(s.Missed), s.CPU, 100*s.CPU.Seconds()/s.For.Seconds(), s.Dropped)
		fmt.Printf("  requests in the storm: %s (%.2f per event)\n", requests(s.Requests), float64(sum(s.Requests))/float64(max(1, s.Events)))
	}
	if f.RestFor > 0 {
		fmt.Printf("  requests at rest over %s: %s\n", f.RestFor, requests(f.RestRequests))
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
