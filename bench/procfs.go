package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clkTck is USER_HZ, the unit of utime and stime in /proc/PID/stat. The
// kernel fixes it at 100 for user space on every architecture Linux exports
// it for, so no sysconf (and no cgo) is needed.
const clkTck = 100

var errProcFormat = errors.New("unexpected /proc format")

// procStat is the part of /proc/PID/stat the bench reads.
type procStat struct {
	PID   int
	Comm  string
	State byte
	PPID  int
	UTime uint64 // clock ticks in user mode, all threads
	STime uint64 // clock ticks in kernel mode, all threads
	// CUTime and CSTime are the reaped children's (and their reaped
	// children's) ticks.
	CUTime, CSTime uint64
}

// parseProcStat parses /proc/PID/stat. comm may contain spaces and
// parentheses, so the fields are counted from the last ')'.
func parseProcStat(b []byte) (procStat, error) {
	var st procStat
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 1 || closing < open {
		return st, fmt.Errorf("stat %q: no (comm): %w", short(b), errProcFormat)
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil {
		return st, fmt.Errorf("stat pid: %w", errors.Join(errProcFormat, err))
	}
	st.PID = pid
	st.Comm = string(b[open+1 : closing])
	// Fields after comm start at field 3 (state); utime is field 14, stime 15.
	rest := strings.Fields(string(b[closing+1:]))
	if len(rest) < 15 || len(rest[0]) != 1 {
		return st, fmt.Errorf("stat of pid %d: %d fields after comm: %w", pid, len(rest), errProcFormat)
	}
	st.State = rest[0][0]
	if st.PPID, err = strconv.Atoi(rest[1]); err != nil {
		return st, fmt.Errorf("stat ppid: %w", errors.Join(errProcFormat, err))
	}
	if st.UTime, err = strconv.ParseUint(rest[11], 10, 64); err != nil {
		return st, fmt.Errorf("stat utime: %w", errors.Join(errProcFormat, err))
	}
	if st.STime, err = strconv.ParseUint(rest[12], 10, 64); err != nil {
		return st, fmt.Errorf("stat stime: %w", errors.Join(errProcFormat, err))
	}
	// cutime and cstime are signed in the kernel's format (long).
	cu, err1 := strconv.ParseInt(rest[13], 10, 64)
	cs, err2 := strconv.ParseInt(rest[14], 10, 64)
	if err1 != nil || err2 != nil || cu < 0 || cs < 0 {
		return st, fmt.Errorf("stat cutime/cstime %q %q: %w", rest[13], rest[14], errProcFormat)
	}
	st.CUTime, st.CSTime = uint64(cu), uint64(cs)
	return st, nil
}

func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, fmt.Errorf("read stat of pid %d: %w", pid, err)
	}
	return parseProcStat(b)
}

// parseKB returns the value of a "Key:   1234 kB" line, as in
// /proc/PID/status (VmRSS) and /proc/meminfo (Slab).
func parseKB(b []byte, key string) (int64, error) {
	for line := range bytes.SplitSeq(b, []byte{'\n'}) {
		name, value, ok := bytes.Cut(line, []byte{':'})
		if !ok || string(name) != key {
			continue
		}
		f := strings.Fields(string(value))
		if len(f) == 0 || len(f) > 2 || (len(f) == 2 && f[1] != "kB") {
			return 0, fmt.Errorf("%s: %q: %w", key, short(value), errProcFormat)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%s: %q: %w", key, short(value), errProcFormat)
		}
		return n, nil
	}
	return 0, fmt.Errorf("%s: missing: %w", key, errProcFormat)
}

// rssKB is a process's resident set, all threads.
func rssKB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read status of pid %d: %w", pid, err)
	}
	return parseKB(b, "VmRSS")
}

// slabKB is the kernel's slab memory, machine-wide: socket, file, epoll and
// pipe structures of every connection end up here.
func slabKB() (int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, fmt.Errorf("read meminfo: %w", err)
	}
	return parseKB(b, "Slab")
}

// fdCount counts a process's open descriptors and, among them, pipe ends.
func fdCount(pid int) (total, pipes int, err error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, fmt.Errorf("list fds of pid %d: %w", pid, err)
	}
	for _, e := range entries {
		total++
		if link, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(link, "pipe:") {
			pipes++
		}
	}
	return total, pipes, nil
}

// descendants returns pid and every live process below it (nginx and
// HAProxy workers), found by scanning the ppid of every process.
func descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return []int{pid}
	}
	children := make(map[int][]int)
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readProcStat(p)
		if err != nil {
			continue // exited while scanning
		}
		children[st.PPID] = append(children[st.PPID], p)
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// cpuTotals are the machine's CPU ticks from the "cpu" line of /proc/stat,
// summed over all CPUs.
type cpuTotals struct {
	Busy uint64 // user, nice, system, irq, softirq, steal
	All  uint64 // Busy plus idle and iowait
}

// parseCPUTotals reads the first ("cpu ") line of /proc/stat. guest time is
// already inside user, so it is not added again.
func parseCPUTotals(b []byte) (cpuTotals, error) {
	line, _, _ := bytes.Cut(b, []byte{'\n'})
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return cpuTotals{}, fmt.Errorf("/proc/stat first line %q: %w", short(line), errProcFormat)
	}
	var v [8]uint64
	for i := range v {
		n, err := strconv.ParseUint(f[i+1], 10, 64)
		if err != nil || n > 1<<56 { // bounded so the sums cannot wrap
			return cpuTotals{}, fmt.Errorf("/proc/stat field %q: %w", f[i+1], errProcFormat)
		}
		v[i] = n
	}
	// user nice system idle iowait irq softirq steal
	busy := v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
	idle := v[3] + v[4]
	return cpuTotals{Busy: busy, All: busy + idle}, nil
}

func readCPUTotals() (cpuTotals, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTotals{}, fmt.Errorf("read /proc/stat: %w", err)
	}
	return parseCPUTotals(b)
}

// tcpListen is the state of a LISTEN socket in /proc/net/tcp;
// udpUnconnected that of a bound, unconnected socket in /proc/net/udp.
const (
	tcpListen      = 0x0A
	udpUnconnected = 0x07
)

// parseListeningPorts returns the local ports of sockets in LISTEN state in
// /proc/net/tcp text. It lets the bench wait for a server without
// connecting to it (a probe connection would count as iperf3's one test).
func parseListeningPorts(b []byte) (map[int]bool, error) {
	return parseBoundPorts(b, tcpListen)
}

// parseBoundPorts returns the local ports of sockets in state want in
// /proc/net/tcp or /proc/net/udp text (both have the same columns).
func parseBoundPorts(b []byte, want uint64) (map[int]bool, error) {
	ports := make(map[int]bool)
	lines := bytes.Split(b, []byte{'\n'})
	for i, line := range lines {
		f := strings.Fields(string(line))
		if i == 0 || len(f) == 0 {
			continue // header or trailing newline
		}
		if len(f) < 4 {
			return nil, fmt.Errorf("socket table line %d: %d fields: %w", i, len(f), errProcFormat)
		}
		_, portHex, ok := strings.Cut(f[1], ":")
		if !ok {
			return nil, fmt.Errorf("socket table local address %q: %w", f[1], errProcFormat)
		}
		port, err1 := strconv.ParseUint(portHex, 16, 16)
		state, err2 := strconv.ParseUint(f[3], 16, 8)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("socket table line %d %q: %w", i, short(line), errProcFormat)
		}
		if state == want {
			ports[int(port)] = true
		}
	}
	return ports, nil
}

func listeningPorts() (map[int]bool, error) {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return nil, fmt.Errorf("read /proc/net/tcp: %w", err)
	}
	return parseListeningPorts(b)
}

// short keeps parse errors readable when the input is garbage.
func short(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}
