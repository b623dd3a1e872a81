package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// env is everything a run needs: tools, binaries, the shared backends and
// the children's bookkeeping.
type env struct {
	opts   options
	log    *slog.Logger
	tools  *tools
	tmp    string
	root   string // the module root, where go build runs
	procs  *procs
	runSeq int

	threads   int // wrk threads: the core count
	tierlb    *tierlbBuild
	base      *tierlbBuild // --baseline's, or nil
	whoamiBin string
	naiveBin  string
	relayBin  string // bench/relay, the floor for bulk transfer
	smallBin  string // bench/relay/small.c, the floors for small requests

	whoamiAddr string
	whoamiPID  int // its CPU shows whether the backend, not the proxy, limits a row
	iperfPort  int // TCP and UDP: iperf3 -s takes both on one port
	dnsAddr    string
	tls        *tlsBackends // the SNI scenario's, or nil
}

// backendAddrs are what the proxies forward to.
type backendAddrs struct {
	HTTP, Iperf, DNS string
	TLS              []string // one per name of sniNames
}

func (e *env) backends() backendAddrs {
	b := backendAddrs{HTTP: e.whoamiAddr, Iperf: "127.0.0.1:" + strconv.Itoa(e.iperfPort), DNS: e.dnsAddr}
	if e.tls != nil {
		b.TLS = e.tls.addrs()
	}
	return b
}

// moduleRoot is where go.mod lives, so `go run ./bench` works from any
// directory inside the repository.
func moduleRoot(ctx context.Context, goBin string) (string, error) {
	out, err := exec.CommandContext(ctx, goBin, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the tierlb module (go env GOMOD is empty)")
	}
	return filepath.Dir(mod), nil
}

// goBuild builds pkg into out as the Dockerfile builds it for the images:
// static (CGO_ENABLED=0), -trimpath, no symbol tables. tierlb runs as that
// image, so that is the binary to measure; a cgo build also maps libc and
// the dynamic loader, 1.7 MB more RSS at rest, which the image never has.
func goBuild(ctx context.Context, goBin, root, out, pkg string) error {
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-ldflags", "-s -w", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w: %s", pkg, err, strings.TrimSpace(string(b)))
	}
	return nil
}

// setup finds the tools, builds both binaries and starts the whoami backend.
// Targets that cannot run get their reason in Unavailable.
func setup(ctx context.Context, opts options, log *slog.Logger, scenarios []*scenario, targets []*target) (*env, error) {
	tl, err := findTools(ctx)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "tierlb-bench-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	// Readable by nobody, who runs the proxy binary and reads its config in
	// the pipe-budget scenario.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	e := &env{opts: opts, log: log, tools: tl, tmp: tmp, procs: newProcs(tmp), threads: opts.Threads}
	root, err := moduleRoot(ctx, tl.path("go"))
	if err != nil {
		return e, err
	}
	e.root = root
	e.whoamiBin = filepath.Join(tmp, "whoami")
	if err := goBuild(ctx, tl.path("go"), root, e.whoamiBin, "./cmd/whoami"); err != nil {
		return e, err
	}
	if t := findTarget(targets, "naive-go"); t != nil {
		e.naiveBin = filepath.Join(tmp, "naive")
		if err := goBuild(ctx, tl.path("go"), root, e.naiveBin, "./bench/naive"); err != nil {
			t.Unavailable = "bench/naive does not build: " + firstLine(err.Error())
		}
	}
	if t := findTarget(targets, "splice-relay"); t != nil {
		e.relayBin = filepath.Join(tmp, "relay")
		if err := buildRelay(ctx, root, e.relayBin); err != nil {
			t.Unavailable = firstLine(err.Error())
		}
	}
	if ts := smallTargets(targets); len(ts) > 0 {
		e.smallBin = filepath.Join(tmp, "small")
		if err := buildSmall(ctx, root, e.smallBin); err != nil {
			for _, t := range ts {
				t.Unavailable = firstLine(err.Error())
			}
		}
	}
	tl.Versions["tierlb"] = gitDescribe(ctx, root)
	e.tierlb = &tierlbBuild{bin: filepath.Join(tmp, "tierlb"), name: "tierlb"}
	buildErr := goBuild(ctx, tl.path("go"), root, e.tierlb.bin, "./cmd/tierlb")
	if opts.Baseline != "" {
		var err error
		if e.base, err = buildBaseline(ctx, tl.path("go"), root, tmp, opts.Baseline); err != nil {
			return e, err
		}
		tl.Versions["tierlb baseline"] = e.base.name[len("tierlb@"):] + " (" + opts.Baseline + ")"
	}
	for _, t := range targets {
		b := e.tierlb
		switch {
		case t.Family == "tierlb-base":
			b = e.base
		case t.Family != "tierlb" && t.Family != "tierlb-copy":
			continue
		case buildErr != nil:
			t.Unavailable = "tierlb does not build: " + firstLine(buildErr.Error())
			continue
		}
		b.loopsFlag = probeLoopsFlag(ctx, b.bin)
		b.nameTarget(t, runtime.NumCPU())
	}
	if buildErr != nil {
		log.Warn("tierlb does not build; its columns are skipped", "err", buildErr)
	}
	if e.iperfPort, err = freePortTCPUDP(); err != nil {
		return e, err
	}
	port, err := freePort()
	if err != nil {
		return e, err
	}
	e.whoamiAddr = "127.0.0.1:" + strconv.Itoa(port)
	w, err := e.procs.start("whoami", []string{e.whoamiBin, "--listen", e.whoamiAddr, "--name", "bench", "--lame-duck", "0"}, nil, nil)
	if err != nil {
		return e, err
	}
	if err := waitListening(ctx, w, []int{port}, 10*time.Second); err != nil {
		return e, err
	}
	e.whoamiPID = w.pid()
	for _, s := range scenarios {
		switch {
		case s.Front == frontUDPQueries && e.dnsAddr == "":
			if err := startDNSBackend(ctx, e); err != nil {
				return e, err
			}
		case s.Front == frontSNI && e.tls == nil:
			if e.tls, err = startTLSBackends(); err != nil {
				return e, err
			}
		}
	}
	return e, nil
}

// startDNSBackend runs a second whoami with only its DNS responder busy, so
// the HTTP backend of the other scenarios stays as it was.
func startDNSBackend(ctx context.Context, e *env) error {
	port, err := freePortTCPUDP()
	if err != nil {
		return err
	}
	e.dnsAddr = "127.0.0.1:" + strconv.Itoa(port)
	w, err := e.procs.start("whoami-dns", []string{e.whoamiBin, "--listen", "127.0.0.1:0", "--name", "bench", "--dns", e.dnsAddr}, nil, nil)
	if err != nil {
		return err
	}
	if err := waitBoundUDP(ctx, w, []int{port}, 10*time.Second); err != nil {
		return err
	}
	return waitAnswer(ctx, e.dnsAddr, 10*time.Second)
}

// buildBaseline builds cmd/tierlb as it was at git revision rev, from a
// `git archive` of it in the temp dir: the repository and its work trees
// are left as they are.
func buildBaseline(ctx context.Context, goBin, root, tmp, rev string) (*tierlbBuild, error) {
	out, err := exec.CommandContext(ctx, "git", "-C", root, "rev-parse", "--short", rev+"^{commit}").Output()
	if err != nil {
		return nil, fmt.Errorf("--baseline %q: not a commit of the repository at %s: %w", rev, root, err)
	}
	short := strings.TrimSpace(string(out))
	src := filepath.Join(tmp, "baseline-src")
	if err := os.Mkdir(src, 0o755); err != nil {
		return nil, fmt.Errorf("--baseline: %w", err)
	}
	archive := exec.CommandContext(ctx, "sh", "-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "sh", root, short, src)
	if b, err := archive.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("--baseline: git archive %s: %w: %s", short, err, strings.TrimSpace(string(b)))
	}
	b := &tierlbBuild{bin: filepath.Join(tmp, "tierlb-baseline"), name: "tierlb@" + short}
	if err := goBuild(ctx, goBin, src, b.bin, "./cmd/tierlb"); err != nil {
		return nil, fmt.Errorf("--baseline %s: %w", rev, err)
	}
	return b, nil
}

// checkTierlb runs tierlb once in quick mode-equivalent config and fails its
// columns early, with its own words, if it does not serve.
func checkTierlb(ctx context.Context, e *env, targets []*target) {
	for _, t := range targets {
		if !strings.HasPrefix(t.Family, "tierlb") || t.Unavailable != "" {
			continue
		}
		r, err := startTarget(ctx, e, t, frontTCP, 0, nil)
		if err == nil {
			var c interface{ Close() error }
			c, err = dialAndAsk(r.httpAddr)
			if err == nil {
				c.Close()
			}
			r.stop()
		}
		if err != nil {
			t.Unavailable = "tierlb does not serve: " + firstLine(err.Error())
			e.log.Warn("skipping target", "target", t.Name, "err", err)
		}
	}
}

// cleanup stops every child and removes the temp dir (kept on request, for
// the proxies' logs and configs).
func (e *env) cleanup() {
	e.procs.stopAll()
	if e.tls != nil {
		e.tls.close()
	}
	if e.opts.KeepTmp {
		e.log.Info("kept temporary files", "dir", e.tmp)
		return
	}
	os.RemoveAll(e.tmp)
}

// credFor is nil (root, as started) unless the scenario runs as nobody.
func credFor(s *scenario) (*syscall.Credential, error) {
	if !s.AsNobody || os.Geteuid() != 0 {
		return nil, nil
	}
	return nobody()
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	if len(line) > 300 {
		line = line[:300] + "..."
	}
	return line
}

// gitDescribe names the tierlb source that was measured: the commit, and
// "+uncommitted changes" when the work tree differs from it.
func gitDescribe(ctx context.Context, root string) string {
	out, err := exec.CommandContext(ctx, "git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown (not a git checkout)"
	}
	desc := "commit " + strings.TrimSpace(string(out))
	st, err := exec.CommandContext(ctx, "git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output()
	if err == nil && len(strings.TrimSpace(string(st))) > 0 {
		desc += " + uncommitted changes"
	}
	return desc
}
