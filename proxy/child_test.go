package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tierlb/tierlb/backends"
)

// Some tests run their service in a child process of the test binary, so
// that what they measure or limit (RSS, descriptors, RLIMIT_NOFILE) is the
// service's alone. The parent re-runs the binary with only that test
// selected and childEnv set; the test, seeing childEnv, calls serveChild.

const (
	childEnv        = "TIERLB_TEST_CHILD"
	childBackendEnv = "TIERLB_TEST_CHILD_BACKEND"
)

// isChild reports whether this process is the child of test.
func isChild(test string) bool { return os.Getenv(childEnv) == test }

// serviceChild is a running child, serving on addr until stop.
type serviceChild struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr strings.Builder
	addr   string
	once   sync.Once
}

// startChild runs test's child with a service proxying to backend, and
// stops it when t ends.
func startChild(t *testing.T, test, backend string) *serviceChild {
	t.Helper()
	c := &serviceChild{cmd: exec.Command(os.Args[0], "-test.run=^"+test+"$")}
	c.cmd.Env = append(os.Environ(), childEnv+"="+test, childBackendEnv+"="+backend)
	c.stdin, _ = c.cmd.StdinPipe()
	stdout, _ := c.cmd.StdoutPipe()
	c.cmd.Stderr = &c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.stop() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("child address: %v; child log:\n%s", err, c.stop())
	}
	c.addr = strings.TrimSpace(line)
	return c
}

// stop ends the child (it shuts down when its stdin closes), waits for it
// and returns what it logged. Reading the log before the child has exited
// would race with the copy into it.
func (c *serviceChild) stop() string {
	c.once.Do(func() {
		c.stdin.Close()
		c.cmd.Wait()
	})
	return c.stderr.String()
}

func (c *serviceChild) pid() int { return c.cmd.Process.Pid }

// serveChild is the child's side: a service named name on 127.0.0.1:0,
// proxying to the parent's backend. Once it serves, ready (if any) runs;
// then the address goes to stdout for the parent, and the service runs
// until stdin closes, shuts down and exits the process.
func serveChild(name string, opts Options, ready func(*Service) error) {
	exitOn := func(err error) {
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	set := backends.NewSet(name, backends.RoundRobin, backends.SetOptions{})
	addr := os.Getenv(childBackendEnv)
	set.Update([]backends.Spec{{ID: addr, Address: addr, Weight: 1}})
	s, err := NewService(Config{Name: name, Listen: "127.0.0.1:0", ZeroCopy: true}, set, opts)
	if err == nil {
		err = s.Listen()
	}
	exitOn(err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	if ready != nil {
		exitOn(ready(s))
	}
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	fmt.Println(s.Addr())
	<-served
	sctx, scancel := context.WithTimeout(context.Background(), time.Second)
	defer scancel()
	s.Shutdown(sctx)
	os.Exit(0)
}

// mustLoops returns n running loops for a child process, which exits
// without stopping them.
func mustLoops(n int) *Loops {
	set, err := NewLoops(n, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go set.Run(context.Background())
	return set
}
