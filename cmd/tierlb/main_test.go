package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// minimalYAML is the smallest valid config: one service, one backend.
const minimalYAML = `
services:
  - name: app
    listen: 127.0.0.1:8080
    backends:
      static: ["127.0.0.1:9001"]
`

// binary is the tierlb binary built once for the tests that exec it.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tierlb-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "tierlb")
	build := exec.Command("go", "build", "-race", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build tierlb:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runInProcess runs the command line in-process and returns its exit code,
// stdout and stderr.
func runInProcess(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := runMain(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// writeFile writes content to name in a fresh temp dir and returns the path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// backend is a loopback TCP server that greets each connection with its name
// and a newline, then echoes what it reads.
type backend struct {
	name string
	ln   net.Listener
	wg   sync.WaitGroup
}

func startBackend(t *testing.T, name string) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: name, ln: ln}
	b.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.wg.Go(func() {
				defer c.Close()
				if _, err := io.WriteString(c, name+"\n"); err != nil {
					return
				}
				_, _ = io.Copy(c, c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		b.wg.Wait()
	})
	return b
}

func (b *backend) addr() string { return b.ln.Addr().String() }

// greet connects to addr and returns the backend's greeting line.
func greet(t *testing.T, addr string) (string, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// proc is a running tierlb binary whose stderr is collected line by line.
type proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  bytes.Buffer
	more chan struct{} // signalled on every new line
	done chan struct{} // closed when the process has exited
	err  error
}

// startBinary execs tierlb with args; the test's cleanup kills it if it is
// still running.
func startBinary(t *testing.T, args ...string) *proc {
	t.Helper()
	return startBinaryEnv(t, nil, args...)
}

// startBinaryEnv is startBinary with extra environment variables (KEY=VALUE),
// which win over the test's own.
func startBinaryEnv(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binary, args...), more: make(chan struct{}, 1), done: make(chan struct{})}
	// The process must not depend on whether this machine runs Docker:
	// docker.enabled: auto turns discovery on wherever the socket exists.
	// Discovery tests turn it back on through env.
	p.cmd.Env = append(append(os.Environ(), "TIERLB_DOCKER_ENABLED=false"), env...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.more <- struct{}{}:
			default:
			}
		}
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("tierlb log:\n%s", p.logs())
		}
	})
	return p
}

func (p *proc) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// waitLog waits until the log matches re and returns the first submatch
// (or the whole match).
func (p *proc) waitLog(t *testing.T, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(15 * time.Second)
	for {
		if m := rx.FindStringSubmatch(p.logs()); m != nil {
			return m[len(m)-1]
		}
		select {
		case <-p.more:
		case <-p.done:
			if m := rx.FindStringSubmatch(p.logs()); m != nil {
				return m[len(m)-1]
			}
			t.Fatalf("tierlb exited (%v) before logging %q", p.err, re)
		case <-deadline:
			t.Fatalf("timed out waiting for log %q", re)
		}
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("tierlb still running after %v", within)
	}
	return p.cmd.ProcessState.ExitCode()
}

// serviceAddr waits for the "serving" line of service and returns its
// bound address.
func (p *proc) serviceAddr(t *testing.T, service string) string {
	t.Helper()
	return p.waitLog(t, `msg=serving service=`+regexp.QuoteMeta(service)+` listen=(\S+)`)
}
