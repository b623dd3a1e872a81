package testkit

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"
)

// BuildBinary builds the Go package in directory pkg (relative to the
// test's) with the given build flags into a fresh temporary directory, for
// a TestMain to build once what its tests exec. remove deletes the
// directory.
func BuildBinary(pkg string, flags ...string) (path string, remove func(), err error) {
	abs, err := filepath.Abs(pkg)
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", "tierlb-bin-")
	if err != nil {
		return "", nil, err
	}
	remove = func() { os.RemoveAll(dir) }
	// Named as its package's directory, so that it is "tierlb" in ps and
	// in its own messages, as users see it.
	path = filepath.Join(dir, filepath.Base(abs))
	args := append(append([]string{"build"}, flags...), "-o", path, pkg)
	build := exec.Command("go", args...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		remove()
		return "", nil, fmt.Errorf("go build %s: %w", pkg, err)
	}
	return path, remove, nil
}

// waitLogWithin is how long WaitLog waits: long enough for a process
// starting under -race on a loaded machine.
const waitLogWithin = 20 * time.Second

// logTail is how much of the log a failed test shows.
const logTail = 16 << 10

// Proc is a running process whose stderr is collected line by line.
type Proc struct {
	Cmd *exec.Cmd

	mu   sync.Mutex
	log  bytes.Buffer
	more chan struct{} // signalled on every new line
	done chan struct{} // closed when the process has exited
	err  error         // what Wait returned; read after done
}

// StartProc starts cmd and collects its stderr. When the test ends the
// process is killed if it still runs, and if the test failed the tail of
// its log is logged.
func StartProc(t testing.TB, cmd *exec.Cmd) *Proc {
	t.Helper()
	p := &Proc{Cmd: cmd, more: make(chan struct{}, 1), done: make(chan struct{})}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatalf("stderr of %s: %v", cmd.Path, err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.more <- struct{}{}:
			default:
			}
		}
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if p.Alive() {
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			logs := p.Logs()
			t.Logf("process log (tail):\n%s", logs[max(0, len(logs)-logTail):])
		}
	})
	return p
}

// Logs is what the process has written to stderr so far.
func (p *Proc) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Alive reports whether the process still runs.
func (p *Proc) Alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// WaitLog waits until the log matches re and returns the last submatch
// (the whole match when re has no group). It fails the test if the
// process exits or the wait times out first.
func (p *Proc) WaitLog(t testing.TB, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(waitLogWithin)
	// A second waiter may take the signal of a new line: the tick makes
	// sure each waiter looks again soon anyway.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if m := rx.FindStringSubmatch(p.Logs()); m != nil {
			return m[len(m)-1]
		}
		select {
		case <-p.more:
		case <-tick.C:
		case <-p.done:
			if m := rx.FindStringSubmatch(p.Logs()); m != nil {
				return m[len(m)-1]
			}
			t.Fatalf("process exited (%v) before logging %q", p.err, re)
		case <-deadline:
			t.Fatalf("timed out after %v waiting for log %q", waitLogWithin, re)
		}
	}
}

// Wait waits up to within for the process to exit and returns its exit
// code.
func (p *Proc) Wait(t testing.TB, within time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("process still running after %v", within)
	}
	return p.Cmd.ProcessState.ExitCode()
}
