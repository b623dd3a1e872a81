package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"
)

// installHint is the one command that installs every external tool.
const installHint = "apt-get install -y wrk haproxy nginx libnginx-mod-stream iperf3 strace"

// tools are the external programs the bench drives.
type tools struct {
	paths map[string]string
	// nginxStreamModule is the path of a dynamic stream module to load, ""
	// when the module is built in.
	nginxStreamModule string
	Versions          map[string]string
}

func (t *tools) path(name string) string { return t.paths[name] }

var errMissingTools = errors.New("missing tools")

// findTools checks for wrk, haproxy, nginx with the stream module, iperf3 and
// strace, and says exactly how to install what is missing.
func findTools(ctx context.Context) (*tools, error) {
	t := &tools{paths: make(map[string]string), Versions: make(map[string]string)}
	var missing []string
	for _, name := range []string{"wrk", "haproxy", "nginx", "iperf3", "strace", "go"} {
		p, err := exec.LookPath(name)
		if err != nil && name == "go" {
			p = filepath.Join(runtime.GOROOT(), "bin", "go")
			_, err = os.Stat(p)
		}
		if err != nil {
			missing = append(missing, name)
			continue
		}
		t.paths[name] = p
	}
	if p := t.paths["nginx"]; p != "" {
		out, _ := exec.CommandContext(ctx, p, "-V").CombinedOutput()
		mod, ok := nginxStream(string(out))
		switch {
		case !ok:
			missing = append(missing, "nginx stream module (libnginx-mod-stream)")
		default:
			t.nginxStreamModule = mod
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: %s; install with: %s", errMissingTools, strings.Join(missing, ", "), installHint)
	}
	t.Versions = versions(ctx, t)
	return t, nil
}

// nginxStream finds the stream module in `nginx -V` output: built in, or a
// dynamic module whose .so exists in the modules path.
func nginxStream(v string) (module string, ok bool) {
	switch {
	case strings.Contains(v, "--with-stream=dynamic"):
		// Where nginx itself looks; the Debian paths when it does not say.
		dirs := []string{"/usr/lib/nginx/modules", "/usr/share/nginx/modules"}
		if m := regexp.MustCompile(`--modules-path=(\S+)`).FindStringSubmatch(v); m != nil {
			dirs = []string{m[1]}
		}
		for _, d := range dirs {
			p := filepath.Join(d, "ngx_stream_module.so")
			if _, err := os.Stat(p); err == nil {
				return p, true
			}
		}
		return "", false
	case strings.Contains(v, "--with-stream "), strings.HasSuffix(strings.TrimSpace(v), "--with-stream"):
		return "", true
	}
	return "", false
}

// versions records the first line each tool prints about itself.
func versions(ctx context.Context, t *tools) map[string]string {
	v := make(map[string]string)
	for name, args := range map[string][]string{
		"go": {"version"}, "haproxy": {"-v"}, "nginx": {"-v"}, "wrk": {"-v"},
		"iperf3": {"-v"}, "strace": {"-V"},
	} {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		out, _ := exec.CommandContext(cctx, t.paths[name], args...).CombinedOutput()
		cancel()
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		v[name] = strings.TrimSpace(line)
	}
	return v
}

// machine describes the box the numbers came from.
type machine struct {
	NProc      int
	Kernel     string
	CPUModel   string
	MemTotalKB int64
	NoFile     uint64
	PipeSoft   string // fs.pipe-user-pages-soft
	PipeMax    string // fs.pipe-max-size
}

func describeMachine(nofile uint64) machine {
	m := machine{NProc: runtime.NumCPU(), NoFile: nofile}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range bytes.SplitSeq(b, []byte{'\n'}) {
			if k, v, ok := bytes.Cut(line, []byte{':'}); ok && string(bytes.TrimSpace(k)) == "model name" {
				m.CPUModel = string(bytes.TrimSpace(v))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m.MemTotalKB, _ = parseKB(b, "MemTotal")
	}
	read := func(p string) string {
		b, _ := os.ReadFile(p)
		return strings.TrimSpace(string(b))
	}
	m.PipeSoft = read("/proc/sys/fs/pipe-user-pages-soft")
	m.PipeMax = read("/proc/sys/fs/pipe-max-size")
	return m
}

// loadAvg1 is the 1-minute load average: how busy the shared box was.
func loadAvg1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	var l float64
	if _, err := fmt.Sscan(string(b), &l); err != nil {
		return -1
	}
	return l
}
