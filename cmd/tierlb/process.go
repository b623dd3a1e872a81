package main

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"

	"golang.org/x/sys/unix"
)

// What the process decides about itself as it starts: the event loops'
// share of the CPUs, GOMAXPROCS and the open files limit. The packages
// only take the results as options (proxy.Options.Loops).

// hostCPU is what the process finds about its CPUs as it starts.
type hostCPU struct {
	// procs is GOMAXPROCS as the runtime chose it: the usable cores, after
	// a container's CPU limit (cgroup quota) and the GOMAXPROCS variable.
	procs int
	// userSet reports that the GOMAXPROCS variable is set: the user's
	// choice stands and is not raised.
	userSet bool
}

func hostProcs() hostCPU {
	return hostCPU{procs: runtime.GOMAXPROCS(0), userSet: os.Getenv("GOMAXPROCS") != ""}
}

// procPlan is how many event loops the process runs for all its services, and the GOMAXPROCS
// that goes with them.
type procPlan struct {
	loops      int // the process's event loops (proxy.NewLoops)
	configured int // engine.loops as configured; 0: one per core
	procs      int // GOMAXPROCS before the plan
	gomaxprocs int // GOMAXPROCS after it
	userSet    bool
}

// planProcs decides the loop count and GOMAXPROCS from engine.loops.
//
// A loop sleeps in a blocking epoll_wait. Go's scheduler sees a thread in a
// system call; unless some P is idle, its monitor (sysmon) takes that P away
// after 20µs, and every wakeup then waits for a P again. So GOMAXPROCS is
// raised to one above the loop count, keeping a P free for Go's own
// goroutines (health checks, discovery, the admin API) and for a woken loop
// to find at once. It is only ever raised: with fewer loops than Ps there is
// a free one already. A GOMAXPROCS the user set is left alone.
func planProcs(loops int, h hostCPU) procPlan {
	p := procPlan{loops: loops, configured: loops, procs: h.procs, gomaxprocs: h.procs, userSet: h.userSet}
	if p.loops <= 0 {
		p.loops = h.procs
	}
	if !h.userSet && p.loops+1 > h.procs {
		p.gomaxprocs = p.loops + 1
	}
	return p
}

// apply sets GOMAXPROCS. From then on the runtime no longer follows
// changes of the container's CPU limit; a restart picks them up.
func (p procPlan) apply() {
	if p.gomaxprocs != runtime.GOMAXPROCS(0) {
		runtime.GOMAXPROCS(p.gomaxprocs)
	}
}

// note says what engine.loops comes to on this machine, for `tierlb check`.
func (p procPlan) note() string {
	what := fmt.Sprintf("%d loops for all services", p.loops)
	if p.loops == 1 {
		what = "1 loop for all services"
	}
	if p.configured == 0 {
		what += ", one per core"
	}
	switch {
	case p.gomaxprocs != p.procs:
		return fmt.Sprintf("%s; GOMAXPROCS %d raised to %d to keep a P free", what, p.procs, p.gomaxprocs)
	case p.userSet:
		return fmt.Sprintf("%s; GOMAXPROCS %d, set by the GOMAXPROCS variable", what, p.gomaxprocs)
	}
	return fmt.Sprintf("%s; GOMAXPROCS %d", what, p.gomaxprocs)
}

// defaultGOGC is the GC target tierlb runs with unless the GOGC variable
// says otherwise: the heap may grow by half its live size between
// collections, where Go's default lets it double.
//
// tierlb's heap is its routing state (discovered containers, backends,
// their counters' history), almost all of it live for as long as the
// containers run, while the data path allocates next to nothing: 0 bytes
// per keep-alive request and about 90 per new connection (measured on
// /metrics' go_memstats_alloc_bytes_total under wrk). Go's default lets
// the process hold twice that state, and a status call or a discovery
// burst is enough to fill the headroom. At 10,000 discovered backends a
// GC target of 50 keeps about 0.5 KB per backend less resident, for about
// 15% more CPU in an event storm, whose collections are the only ones that
// cost anything.
const defaultGOGC = 50

// gcPlan is the GC target the process runs with.
type gcPlan struct {
	percent int  // the target in force
	was     int  // the runtime's before the plan
	userSet bool // the GOGC variable is set: it stands
}

// planGC decides the GC target: the GOGC variable's when it is set (off
// included), else defaultGOGC.
func planGC(getenv func(string) string) gcPlan {
	now := currentGOGC()
	if getenv("GOGC") != "" {
		return gcPlan{percent: now, was: now, userSet: true}
	}
	return gcPlan{percent: defaultGOGC, was: now}
}

// apply sets the GC target, unless the user's stands.
func (g gcPlan) apply() {
	if !g.userSet {
		debug.SetGCPercent(g.percent)
	}
}

// currentGOGC reads the runtime's GC target without changing it; -1 is
// off, as debug.SetGCPercent says it.
func currentGOGC() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 100
	}
	v := s[0].Value.Uint64()
	if v > math.MaxInt32 {
		return -1
	}
	return int(v)
}

// raiseNoFileLimit lifts the soft RLIMIT_NOFILE to the hard limit: every
// proxied connection holds two sockets (and pipes while splicing), and the
// usual soft limit of 1024 would cap a busy proxy at a few hundred clients.
// Failing to raise it is logged, not fatal: tierlb still works, with fewer
// connections.
func raiseNoFileLimit(log *slog.Logger) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn("read the open files limit", "err", err)
		return
	}
	soft := lim.Cur
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			log.Warn("raise the open files limit", "soft", soft, "hard", lim.Max, "err", err)
			return
		}
	}
	log.Info("open files limit", "soft_was", soft, "soft", lim.Cur, "hard", lim.Max)
}

// ioUringState says whether the loops batch small messages through
// io_uring: "on", "off" (engine.io_uring: false), or why the kernel
// refuses it, as probe finds.
func ioUringState(enabled bool, probe func() error) string {
	if !enabled {
		return "off"
	}
	if err := probe(); err != nil {
		return "unavailable: " + err.Error()
	}
	return "on"
}

// defaultMemProfileRate is the runtime's own heap sampling interval
// (runtime.MemProfileRate): one allocation sampled per 512 KiB.
const defaultMemProfileRate = 512 * 1024

// heapSampling is whether the runtime samples allocations for the heap
// profile.
//
// Its only reader is /debug/pprof/heap, which exists with admin.pprof
// (a restart setting). Without it the samples are pure cost: each one
// unwinds the allocating stack, which touches the binary's code and
// tables, and keeps a record in the runtime's 1.4 MB profile hash. At
// 200 services that was 0.3–0.5 MB of the process's resident memory
// (medians of 8 interleaved idle starts: 20.96 MB with sampling, 20.6
// without; of 5 starts under load, GODEBUG=memprofilerate=0 against the
// default: 0.48 MB less). So `run` starts with sampling off (stopHeapSampling, before
// the config is read) and turns it back on when the config has
// admin.pprof: the profile then holds everything allocated from the
// config on, which is all that the services allocate. A rate set with
// GODEBUG=memprofilerate stands.
type heapSampling struct {
	userSet bool // GODEBUG sets memprofilerate: it stands
}

// stopHeapSampling turns sampling off unless GODEBUG sets it, and returns
// what apply needs to know.
func stopHeapSampling(godebug string) heapSampling {
	if godebugSets(godebug, "memprofilerate") {
		return heapSampling{userSet: true}
	}
	runtime.MemProfileRate = 0
	return heapSampling{}
}

// apply turns sampling back on at the runtime's default rate when pprof
// serves the heap profile.
func (h heapSampling) apply(pprof bool) {
	if h.userSet {
		return
	}
	runtime.MemProfileRate = 0
	if pprof {
		runtime.MemProfileRate = defaultMemProfileRate
	}
}

// godebugSets reports whether the GODEBUG value sets key (key=value in
// its comma-separated list).
func godebugSets(godebug, key string) bool {
	for _, kv := range strings.Split(godebug, ",") {
		if k, _, ok := strings.Cut(strings.TrimSpace(kv), "="); ok && k == key {
			return true
		}
	}
	return false
}
