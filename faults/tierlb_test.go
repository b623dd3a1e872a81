package faults

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tierlb/tierlb/internal/testkit"
)

// binary is the tierlb binary the suite runs, built once, without -race:
// the suite measures the program users run.
var binary string

func TestMain(m *testing.M) {
	bin, remove, err := testkit.BuildBinary("../cmd/tierlb")
	if err != nil {
		fmt.Fprintln(os.Stderr, "build tierlb:", err)
		os.Exit(1)
	}
	binary = bin
	code := m.Run()
	remove()
	os.Exit(code)
}

// full reports whether the slow scenarios run (TIERLB_FAULTS=full).
func full() bool { return os.Getenv("TIERLB_FAULTS") == "full" }

// needFull skips a slow scenario unless the full suite was asked for.
func needFull(t *testing.T) {
	t.Helper()
	if !full() {
		t.Skip("slow scenario: set TIERLB_FAULTS=full")
	}
}

// report logs the scenario's line for scripts/faults.sh's table.
func report(t *testing.T, scenario, result, detail string, args ...any) {
	t.Helper()
	t.Logf("fault: %s | %s | %s", scenario, result, fmt.Sprintf(detail, args...))
}

// verdict is "ok" unless the test has failed.
func verdict(t *testing.T) string {
	if t.Failed() {
		return "FAIL"
	}
	return "ok"
}

// proc is a running tierlb whose stderr is collected.
type proc struct {
	*testkit.Proc
	admin string
}

// start runs `tierlb run --config FILE` with the given config text (admin
// on a loopback port, Docker off) under a shell prelude such as
// "ulimit -Hn 256" (empty for none), and waits until the admin answers.
func start(t *testing.T, prelude, config string) *proc {
	t.Helper()
	file := filepath.Join(t.TempDir(), "tierlb.yaml")
	if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	script := `exec "$0" run --config "$1"`
	if prelude != "" {
		script = prelude + " && " + script
	}
	cmd := exec.Command("/bin/sh", "-c", script, binary, file)
	cmd.Env = append(os.Environ(), "TIERLB_DOCKER_ENABLED=false")
	p := &proc{Proc: testkit.StartProc(t, cmd)}
	p.admin = p.WaitLog(t, `msg="admin listening" addr=(\S+)`)
	return p
}

// listenAddr waits for the service's listener and returns its address.
func (p *proc) listenAddr(t *testing.T, service string) string {
	t.Helper()
	return p.WaitLog(t, `msg=serving service=`+regexp.QuoteMeta(service)+` listen=(\S+)`)
}

func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.Cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// fds counts the process's open descriptors.
func (p *proc) fds(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.Cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// metric returns the value of one series from /metrics, or -1 when it is
// not there.
func (p *proc) metric(t *testing.T, series string) float64 {
	t.Helper()
	v, n := p.metricSum(t, series, "")
	if n == 0 {
		return -1
	}
	return v
}

// metricSum adds up the series whose text starts with prefix and contains
// match, and says how many there were.
func (p *proc) metricSum(t *testing.T, prefix, match string) (sum float64, n int) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + p.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		name, v, ok := strings.Cut(line, " ")
		if !ok || !strings.HasPrefix(line, prefix) || !strings.Contains(name, match) {
			continue
		}
		if match == "" && name != prefix {
			continue // an exact series was asked for
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sum += f
		n++
	}
	return sum, n
}
