package main

import (
	"errors"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"syscall"
	"testing"
	"time"
)

func TestPlanProcs(t *testing.T) {
	tests := []struct {
		name             string
		loops            int
		host             hostCPU
		wantLoops, wantP int
	}{
		{"one per core, a P kept free", 0, hostCPU{procs: 2}, 2, 3},
		{"one per core, one core", 0, hostCPU{procs: 1}, 1, 2},
		{"fewer loops than cores: already a free P", 1, hostCPU{procs: 4}, 1, 4},
		{"one loop on two cores", 1, hostCPU{procs: 2}, 1, 2},
		{"more loops than cores", 4, hostCPU{procs: 2}, 4, 5},
		{"GOMAXPROCS set by the user stands", 0, hostCPU{procs: 2, userSet: true}, 2, 2},
		{"loops set, GOMAXPROCS set", 3, hostCPU{procs: 2, userSet: true}, 3, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := planProcs(tt.loops, tt.host)
			if p.loops != tt.wantLoops || p.gomaxprocs != tt.wantP {
				t.Errorf("planProcs(%d, %+v) = %d loops, GOMAXPROCS %d; want %d, %d",
					tt.loops, tt.host, p.loops, p.gomaxprocs, tt.wantLoops, tt.wantP)
			}
		})
	}
}

func TestLoopsSetting(t *testing.T) {
	file := writeFile(t, "c.yaml", minimalYAML)
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string // regexp on the engine.loops line of check
	}{
		{"default", nil, nil, `loops: 0 # \d+ loops? for all services, one per core; GOMAXPROCS`},
		{"flag", nil, []string{"--loops", "3"}, `loops: 3 # 3 loops for all services; GOMAXPROCS`},
		{"env", map[string]string{"TIERLB_ENGINE_LOOPS": "5"}, nil, `loops: 5 # 5 loops for all services; GOMAXPROCS \d+ raised to 6`},
		{"flag beats env", map[string]string{"TIERLB_ENGINE_LOOPS": "5"}, []string{"--loops", "1"}, `loops: 1 # 1 loop for all services;`},
		{"user GOMAXPROCS", map[string]string{"GOMAXPROCS": "7", "TIERLB_ENGINE_LOOPS": "9"}, nil, `loops: 9 # 9 loops for all services; GOMAXPROCS \d+, set by the GOMAXPROCS variable`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			code, stdout, stderr := runInProcess(t, append([]string{"check", "--config", file}, tt.args...)...)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if !regexp.MustCompile(`(?m)^  ` + tt.want).MatchString(stdout) {
				t.Errorf("no engine line matching %q in:\n%s", tt.want, stdout)
			}
		})
	}
	code, _, stderr := runInProcess(t, "check", "--config", file, "--loops", "2000")
	if code != exitConfig || !regexp.MustCompile(`engine.loops: 2000 is out of range \(0-1024`).MatchString(stderr) {
		t.Errorf("--loops 2000: exit %d, stderr %q; want 1 naming engine.loops", code, stderr)
	}
}

// TestRunLogsLoops starts the binary with a loop count and a GOMAXPROCS
// of the user's: the start line says what was chosen, and the service
// serves.
func TestRunLogsLoops(t *testing.T) {
	b := startBackend(t, "b1")
	tests := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"flag, GOMAXPROCS raised", []string{"GOMAXPROCS="}, []string{"--loops", "16"}, `event_loops=16 gomaxprocs=(\d+) gomaxprocs_was=(\d+)`},
		{"user GOMAXPROCS stands", []string{"GOMAXPROCS=1"}, nil, `event_loops=1 gomaxprocs=(1) gomaxprocs_was=(1)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"run", "--listen", "127.0.0.1:0", "--backend", b.addr(), "--admin-listen", ""}, tt.args...)
			p := startBinaryEnv(t, tt.env, args...)
			p.WaitLog(t, `msg="starting tierlb"`)
			m := regexp.MustCompile(tt.want).FindStringSubmatch(p.Logs())
			if m == nil {
				t.Fatalf("start line does not match %q", tt.want)
			}
			// Raised to one above the loops, never lowered.
			now, was := atoi(t, m[1]), atoi(t, m[2])
			if tt.args != nil && now != max(was, 17) {
				t.Errorf("GOMAXPROCS %d → %d with 16 loops; want %d", was, now, max(was, 17))
			}
			if got := waitGreeting(t, p.serviceAddr(t, "quick")); got != "b1" {
				t.Errorf("greeting %q, want b1", got)
			}
			if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code := p.Wait(t, 10*time.Second); code != 0 {
				t.Errorf("exit %d, want 0", code)
			}
		})
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPlanGC: tierlb's GC target unless the GOGC variable is set, which
// stands (off included) and is reported as it is.
func TestPlanGC(t *testing.T) {
	was := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(was) })

	g := planGC(func(string) string { return "" })
	if g.userSet || g.percent != defaultGOGC || g.was != 100 {
		t.Fatalf("no GOGC: %+v, want %d (was 100)", g, defaultGOGC)
	}
	g.apply()
	if got := currentGOGC(); got != defaultGOGC {
		t.Fatalf("after apply the runtime's GOGC is %d, want %d", got, defaultGOGC)
	}

	debug.SetGCPercent(-1) // as GOGC=off leaves it
	g = planGC(func(k string) string {
		if k == "GOGC" {
			return "off"
		}
		return ""
	})
	if !g.userSet || g.percent != -1 || g.was != -1 {
		t.Fatalf("GOGC=off: %+v, want the user's -1", g)
	}
	g.apply()
	if got := currentGOGC(); got != -1 {
		t.Fatalf("apply changed the user's GOGC to %d", got)
	}
}

func TestIOUringState(t *testing.T) {
	refused := func() error { return errors.New("io_uring_setup: operation not permitted") }
	ok := func() error { return nil }
	tests := []struct {
		name    string
		enabled bool
		probe   func() error
		want    string
	}{
		{"on", true, ok, "on"},
		{"turned off", false, ok, "off"},
		{"off is not probed", false, func() error { panic("probed") }, "off"},
		{"refused by the kernel", true, refused, "unavailable: io_uring_setup: operation not permitted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ioUringState(tt.enabled, tt.probe); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestRunIOUringOff: engine.io_uring: false reaches the start line and
// the loops, which then serve with plain syscalls.
func TestRunIOUringOff(t *testing.T) {
	b := startBackend(t, "b1")
	p := startBinaryEnv(t, []string{"TIERLB_ENGINE_IO_URING=false"}, "run", "--listen", "127.0.0.1:0", "--backend", b.addr(), "--admin-listen", "")
	p.WaitLog(t, `msg="starting tierlb" .* io_uring=off`)
	if got := waitGreeting(t, p.serviceAddr(t, "quick")); got != "b1" {
		t.Errorf("greeting %q, want b1", got)
	}
}

// TestHeapSampling: `run` samples allocations only when admin.pprof can
// serve the heap profile, and a GODEBUG memprofilerate stands.
func TestHeapSampling(t *testing.T) {
	was := runtime.MemProfileRate
	t.Cleanup(func() { runtime.MemProfileRate = was })

	runtime.MemProfileRate = defaultMemProfileRate
	h := stopHeapSampling("")
	if runtime.MemProfileRate != 0 {
		t.Fatalf("before the config: rate %d, want 0", runtime.MemProfileRate)
	}
	h.apply(false)
	if runtime.MemProfileRate != 0 {
		t.Fatalf("admin.pprof off: rate %d, want 0", runtime.MemProfileRate)
	}
	h.apply(true)
	if runtime.MemProfileRate != defaultMemProfileRate {
		t.Fatalf("admin.pprof on: rate %d, want %d", runtime.MemProfileRate, defaultMemProfileRate)
	}

	runtime.MemProfileRate = 1 // as GODEBUG=memprofilerate=1 leaves it
	h = stopHeapSampling("gctrace=1, memprofilerate=1")
	h.apply(false)
	if runtime.MemProfileRate != 1 {
		t.Fatalf("GODEBUG memprofilerate=1: rate %d after the plan, want the user's 1", runtime.MemProfileRate)
	}
}

func TestGodebugSets(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"", false},
		{"memprofilerate=0", true},
		{"gctrace=1,memprofilerate=4096", true},
		{"gctrace=1, memprofilerate=1", true},
		{"xmemprofilerate=1", false},
		{"memprofilerate", false},
	} {
		if got := godebugSets(tt.in, "memprofilerate"); got != tt.want {
			t.Errorf("godebugSets(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
