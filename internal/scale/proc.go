package scale

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// tierlb is the running binary, with what its JSON log said so far. The
// log is read as it is written: a line's arrival time is when the harness
// learns of what tierlb just did.
type tierlb struct {
	cmd  *exec.Cmd
	done chan struct{}

	mu      sync.Mutex
	admin   string
	listen  map[string]string // service → bound address
	counts  map[string]int    // service → backends in its last "backends updated"
	changes chan change       // backend added, removed, draining
	tail    []string          // last lines, for error messages
	errs    []string          // warnings and errors
	changed chan struct{}     // signalled on every state line
	// lastUpdate is the time tierlb stamped on its last "backends
	// updated" line.
	lastUpdate time.Time
}

// change is one backend's change as tierlb logged it, at the time tierlb
// stamped on the line: when the sink had the change, whether or not the
// harness, on a loaded machine, read the line at once.
type change struct {
	kind             string // "added", "removed", "draining"
	service, backend string
	at               time.Time
}

const tailLines = 40

// logLine is the part of a tierlb JSON log line the harness reads.
type logLine struct {
	Time    time.Time `json:"time"`
	Level   string    `json:"level"`
	Msg     string    `json:"msg"`
	Service string    `json:"service"`
	Backend string    `json:"backend"`
	Count   *int      `json:"count"`
	Listen  string    `json:"listen"`
	Addr    string    `json:"addr"`
}

func startTierlb(binary, config string, env []string) (*tierlb, error) {
	cmd := exec.Command(binary, "run", "--config", config)
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = io.Discard
	p := &tierlb{cmd: cmd, done: make(chan struct{}), listen: map[string]string{}, counts: map[string]int{},
		changes: make(chan change, 1<<16), changed: make(chan struct{}, 1)}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", binary, err)
	}
	go func() {
		defer close(p.done)
		p.read(stderr)
		_ = cmd.Wait()
	}()
	return p, nil
}

// read parses the log until the process closes it. Only the lines the
// harness uses are decoded; the rest are looked at for their level.
func (p *tierlb) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		b := sc.Bytes()
		var l logLine
		interesting := bytes.Contains(b, []byte(`"msg":"backend`)) || bytes.Contains(b, []byte(`"msg":"serving"`)) ||
			bytes.Contains(b, []byte(`"msg":"admin listening"`)) || bytes.Contains(b, []byte(`"level":"WARN"`)) ||
			bytes.Contains(b, []byte(`"level":"ERROR"`))
		if interesting && json.Unmarshal(b, &l) != nil {
			interesting = false
		}
		p.mu.Lock()
		if len(p.tail) == tailLines {
			p.tail = p.tail[1:]
		}
		p.tail = append(p.tail, string(b))
		switch {
		case !interesting:
		case l.Level == "WARN" || l.Level == "ERROR":
			p.errs = append(p.errs, string(b))
		case l.Msg == "backends updated" && l.Count != nil:
			p.counts[l.Service] = *l.Count
			p.lastUpdate = l.Time
		case l.Msg == "serving":
			p.listen[l.Service] = l.Listen
		case l.Msg == "admin listening":
			p.admin = l.Addr
		case l.Msg == "backend added" || l.Msg == "backend removed" || l.Msg == "backend draining":
			select {
			case p.changes <- change{kind: strings.TrimPrefix(l.Msg, "backend "), service: l.Service, backend: l.Backend, at: l.Time}:
			default: // the harness reads them as they come; a full channel is a harness bug, seen as missed events
			}
		}
		p.mu.Unlock()
		select {
		case p.changed <- struct{}{}:
		default:
		}
	}
}

// waitFor polls cond on every log line until it holds, the process exits
// or within passes.
func (p *tierlb) waitFor(within time.Duration, what string, cond func() bool) error {
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		p.mu.Lock()
		ok := cond()
		p.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-p.changed:
		case <-tick.C:
		case <-p.done:
			return fmt.Errorf("tierlb exited while waiting for %s; its log ends:\n%s", what, p.logTail())
		case <-deadline.C:
			return fmt.Errorf("no %s within %s; tierlb's log ends:\n%s", what, within, p.logTail())
		}
	}
}

func (p *tierlb) logTail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.tail, "\n")
}

func (p *tierlb) warnings() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.errs...)
}

// stop ends the process with SIGTERM, then SIGKILL after a grace time.
func (p *tierlb) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// cpu is the process's user and system CPU time so far.
func (p *tierlb) cpu() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces: fields count from after its ")".
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", p.cmd.Process.Pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad /proc/%d/stat", p.cmd.Process.Pid)
	}
	const clockTick = 100 // USER_HZ on every Linux this runs on
	return time.Duration(utime+stime) * time.Second / clockTick, nil
}

// rss is the process's resident set size in bytes.
func (p *tierlb) rss() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("bad VmRSS %q", v)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", p.cmd.Process.Pid)
}
