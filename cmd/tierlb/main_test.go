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

	"github.com/tierlb/tierlb/internal/testkit"
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
	bin, remove, err := testkit.BuildBinary(".", "-race")
	if err != nil {
		fmt.Fprintln(os.Stderr, "build tierlb:", err)
		os.Exit(1)
	}
	binary = bin
	code := m.Run()
	remove()
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

// proc is a running tierlb binary whose stderr is collected.
type proc struct{ *testkit.Proc }

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
	cmd := exec.Command(binary, args...)
	// The process must not depend on whether this machine runs Docker:
	// docker.enabled: auto turns discovery on wherever the socket exists.
	// Discovery tests turn it back on through env.
	cmd.Env = append(append(os.Environ(), "TIERLB_DOCKER_ENABLED=false"), env...)
	return &proc{testkit.StartProc(t, cmd)}
}

// serviceAddr waits for the "serving" line of service and returns its
// bound address.
func (p *proc) serviceAddr(t *testing.T, service string) string {
	t.Helper()
	return p.WaitLog(t, `msg=serving service=`+regexp.QuoteMeta(service)+` listen=(\S+)`)
}
