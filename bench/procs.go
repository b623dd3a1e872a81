package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// procs starts the bench's long-running children (backends, proxies, strace)
// and guarantees they are gone at the end: each runs in its own process group
// and is stopped through its PID (the group of that PID, so nginx's workers go
// too), on success, error and ctrl-c alike. Pdeathsig covers the bench itself
// being killed.
type procs struct {
	dir string // logs go here

	mu      sync.Mutex
	seq     int
	running map[*proc]struct{}
}

// proc is one started child.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has been reaped
	waitErr error
}

func newProcs(dir string) *procs {
	return &procs{dir: dir, running: make(map[*proc]struct{})}
}

// nobody is the unprivileged identity that the pipe-budget scenario runs the
// proxy as: the same as setpriv --reuid=nobody --regid=nogroup --clear-groups.
func nobody() (*syscall.Credential, error) {
	u, err := user.Lookup("nobody")
	if err != nil {
		return nil, fmt.Errorf("look up user nobody: %w", err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid := uint64(65534)
	if g, err := user.LookupGroup("nogroup"); err == nil {
		gid, _ = strconv.ParseUint(g.Gid, 10, 32)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// start runs argv in the background with its output in a log file. A nil
// env inherits the bench's environment; a non-nil cred runs it as that user.
func (ps *procs) start(name string, argv, env []string, cred *syscall.Credential) (*proc, error) {
	ps.mu.Lock()
	ps.seq++
	logPath := filepath.Join(ps.dir, fmt.Sprintf("%03d-%s.log", ps.seq, name))
	ps.mu.Unlock()
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	defer logf.Close() // the child keeps its own copy
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, argv[0], err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	ps.mu.Lock()
	ps.running[p] = struct{}{}
	ps.mu.Unlock()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// logTail is the end of the child's output, for error messages.
func (p *proc) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 600 {
		s = "..." + s[len(s)-600:]
	}
	return s
}

// signal sends sig to the child's process group, by the child's PID.
func (p *proc) signal(sig syscall.Signal) {
	if !p.exited() {
		syscall.Kill(-p.pid(), sig)
	}
}

// stop asks the child to exit (SIGTERM), then kills its group after grace.
func (ps *procs) stop(p *proc, grace time.Duration) {
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
	}
	// Workers that outlived their master (they are in its group).
	syscall.Kill(-p.pid(), syscall.SIGKILL)
	ps.mu.Lock()
	delete(ps.running, p)
	ps.mu.Unlock()
}

// stopAll stops every child still running; called on every exit path.
func (ps *procs) stopAll() {
	ps.mu.Lock()
	list := make([]*proc, 0, len(ps.running))
	for p := range ps.running {
		list = append(list, p)
	}
	ps.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range list {
		wg.Go(func() { ps.stop(p, 2*time.Second) })
	}
	wg.Wait()
}

var errExited = errors.New("exited before listening")

// waitListening polls /proc/net/tcp until every port is in LISTEN state, the
// process exits, or the timeout passes. It never connects, so it cannot
// disturb a one-shot server.
func waitListening(ctx context.Context, p *proc, ports []int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		listening, err := listeningPorts()
		if err != nil {
			return err
		}
		missing := 0
		for _, port := range ports {
			if !listening[port] {
				missing++
			}
		}
		if missing == 0 {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s %w (%v): %s", p.name, errExited, p.waitErr, p.logTail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: ports %v not listening after %s: %s", p.name, ports, timeout, p.logTail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// freePort asks the kernel for an unused loopback port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// cpuTicks sums utime+stime over pids; processes that vanished count zero.
func cpuTicks(pids []int) uint64 {
	var sum uint64
	for _, pid := range pids {
		if st, err := readProcStat(pid); err == nil {
			sum += st.UTime + st.STime
		}
	}
	return sum
}
