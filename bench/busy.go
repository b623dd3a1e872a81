package main

import "os"

// The machine is shared, so every run records how much of its CPU went to
// processes that are not the bench's: the load average alone cannot tell,
// since wrk, the proxy and the backend load the machine too.

// cpuMark is a point in time for othersShare.
type cpuMark struct {
	sys cpuTotals
	// own is the bench's ticks: itself, every child it has reaped (proxies
	// are stopped and reaped at the end of each run, wrk and iperf3 too)
	// and the long-running backend.
	own uint64
	ok  bool
}

func markCPU(e *env) cpuMark {
	sys, err := readCPUTotals()
	if err != nil {
		return cpuMark{}
	}
	own, ok := ownTicks(e)
	return cpuMark{sys: sys, own: own, ok: ok}
}

// ownTicks are the CPU ticks of the bench itself, of every child it has
// reaped (wrk, iperf3, stopped proxies) and of the long-running backend.
func ownTicks(e *env) (uint64, bool) {
	self, err := readProcStat(os.Getpid())
	if err != nil {
		return 0, false
	}
	return self.UTime + self.STime + self.CUTime + self.CSTime + cpuTicks([]int{e.whoamiPID}), true
}

// othersShare is the fraction (0..1) of all the machine's CPU time between
// a and b that other processes used; -1 when unknown.
func othersShare(a, b cpuMark) float64 {
	if !a.ok || !b.ok || b.sys.All <= a.sys.All || b.sys.Busy < a.sys.Busy || b.own < a.own {
		return -1
	}
	busy, own := b.sys.Busy-a.sys.Busy, b.own-a.own
	if own > busy {
		own = busy // ticks are sampled at different moments
	}
	return float64(busy-own) / float64(b.sys.All-a.sys.All)
}
