package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Every syscall of the proxy's processes is traced and counted: the data
// path's (splice or the read/write family, io_uring_enter, epoll), a
// connection's setup and end (accept4, socket, setsockopt, connect,
// epoll_ctl, shutdown, close) and a runtime's own (futex, nanosleep), so
// that the totals compare proxies that do the same work with different
// calls.

var (
	readCalls  = []string{"read", "readv", "recvfrom", "recvmsg"}
	writeCalls = []string{"write", "writev", "sendto", "sendmsg", "sendfile"}
	pollCalls  = []string{"epoll_wait", "epoll_pwait"}
)

// syscallCount is one row of `strace -c`.
type syscallCount struct{ Calls, Errors int64 }

var errStraceFormat = errors.New("unexpected strace -c output")

// parseStraceSummary reads the table `strace -c` writes:
//
//	% time     seconds  usecs/call     calls    errors syscall
//	------ ----------- ----------- --------- --------- ----------------
//	 62.11    0.101523           4     21540      7180 splice
//	  0.52    0.000850           2       310           epoll_pwait
//	------ ----------- ----------- --------- --------- ----------------
//	100.00    0.163456           4     38990      7180 total
func parseStraceSummary(text string) (map[string]syscallCount, error) {
	out := make(map[string]syscallCount)
	sawHeader := false
	for line := range strings.SplitSeq(text, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 0 || strings.HasPrefix(f[0], "---"):
			continue
		case f[0] == "%":
			sawHeader = true
			continue
		case !sawHeader:
			continue // "strace: Process N attached" and the like
		}
		if len(f) != 5 && len(f) != 6 {
			return nil, fmt.Errorf("row %q: %w", short([]byte(line)), errStraceFormat)
		}
		name := f[len(f)-1]
		if name == "total" {
			continue
		}
		calls, err := strconv.ParseInt(f[3], 10, 64)
		if err != nil || calls < 0 {
			return nil, fmt.Errorf("calls in %q: %w", short([]byte(line)), errStraceFormat)
		}
		var errs int64
		if len(f) == 6 {
			if errs, err = strconv.ParseInt(f[4], 10, 64); err != nil || errs < 0 {
				return nil, fmt.Errorf("errors in %q: %w", short([]byte(line)), errStraceFormat)
			}
		}
		out[name] = syscallCount{Calls: calls, Errors: errs}
	}
	if !sawHeader {
		return nil, fmt.Errorf("no table: %w", errStraceFormat)
	}
	return out, nil
}

func sumCalls(m map[string]syscallCount, names []string) int64 {
	var n int64
	for _, s := range names {
		n += m[s].Calls
	}
	return n
}

// traced runs load while strace counts the proxy's syscalls (all threads
// and workers), then detaches and parses the summary.
func traced(ctx context.Context, e *env, r *running, name string, load func() error) (map[string]syscallCount, error) {
	pids := r.pids()
	outFile := filepath.Join(e.tmp, fmt.Sprintf("strace-%s-%s-%d.txt", r.t.Name, name, time.Now().UnixNano()))
	args := []string{e.tools.path("strace"), "-f", "-c", "-o", outFile}
	for _, pid := range pids {
		args = append(args, "-p", strconv.Itoa(pid))
	}
	st, err := e.procs.start("strace", args, nil, nil)
	if err != nil {
		return nil, err
	}
	defer e.procs.stop(st, 5*time.Second)
	if err := waitAttached(ctx, st, len(pids)); err != nil {
		return nil, err
	}
	loadErr := load()
	// SIGINT makes strace detach and write its summary.
	st.signal(syscall.SIGINT)
	select {
	case <-st.done:
	case <-time.After(10 * time.Second):
		return nil, fmt.Errorf("strace did not exit after SIGINT: %s", st.logTail())
	}
	if loadErr != nil {
		return nil, loadErr
	}
	b, err := os.ReadFile(outFile)
	if err != nil {
		return nil, fmt.Errorf("strace summary: %w", err)
	}
	return parseStraceSummary(string(b))
}

// waitAttached polls strace's log for one "attached" line per process.
func waitAttached(ctx context.Context, st *proc, n int) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(st.logPath)
		if strings.Count(string(b), "attached") >= n {
			return nil
		}
		if st.exited() {
			return fmt.Errorf("strace exited: %s", st.logTail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("strace did not attach: %s", st.logTail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// runStrace counts syscalls per small request, per new connection and per
// MB of bulk, and fails
// a target that should splice but does not (or must not but does).
func runStrace(ctx context.Context, e *env, r *running) (outcome, error) {
	var o outcome
	d := min(e.opts.Duration, 3*time.Second)
	var small, bulk wrkResult
	ka, err := traced(ctx, e, r, "keepalive", func() (err error) {
		small, _, err = measuredWrk(ctx, e, r, wrkLoad{URL: "http://" + r.httpAddr + "/", Conns: smallConns, Duration: d})
		return err
	})
	if err != nil {
		return o, err
	}
	if small.Requests > 0 {
		req := float64(small.Requests)
		var total int64
		for _, c := range ka {
			total += c.Calls
		}
		o.set("ka_syscalls_per_req", float64(total)/req)
		o.set("ka_splice_per_req", float64(ka["splice"].Calls)/req)
		o.set("ka_splice_eagain_per_req", float64(ka["splice"].Errors)/req)
		o.set("ka_read_per_req", float64(sumCalls(ka, readCalls))/req)
		o.set("ka_write_per_req", float64(sumCalls(ka, writeCalls))/req)
		o.set("ka_epoll_per_req", float64(sumCalls(ka, pollCalls))/req)
		o.set("ka_uring_per_req", float64(ka["io_uring_enter"].Calls)/req)
	}
	// A new connection per request: what accepting, dialing, registering
	// and closing cost, which keep-alive requests do not show.
	var closing wrkResult
	cl, err := traced(ctx, e, r, "close", func() (err error) {
		closing, _, err = measuredWrk(ctx, e, r, wrkLoad{URL: "http://" + r.httpAddr + "/", Conns: smallConns, Duration: d,
			Headers: []string{"Connection: close"}, MaxRate: closeMaxRate})
		return err
	})
	if err != nil {
		return o, err
	}
	if closing.Requests > 0 {
		var total int64
		for _, c := range cl {
			total += c.Calls
		}
		o.set("close_syscalls_per_conn", float64(total)/float64(closing.Requests))
	}
	bk, err := traced(ctx, e, r, "bulk", func() (err error) {
		bulk, _, err = measuredWrk(ctx, e, r, wrkLoad{URL: "http://" + r.httpAddr + bulkPath, Conns: bulkConns, Duration: d})
		return err
	})
	if err != nil {
		return o, err
	}
	splices := bk["splice"].Calls
	rw := sumCalls(bk, readCalls) + sumCalls(bk, writeCalls)
	if mb := bulk.BytesRead / 1e6; mb > 0 {
		o.set("bulk_splice_per_mb", float64(splices)/mb)
		o.set("bulk_readwrite_per_mb", float64(rw)/mb)
	}
	zeroCopy := 0.0
	switch {
	case r.t.ExpectSplice && splices == 0:
		o.note("FAILURE: no splice(2) calls during bulk transfer: the zero-copy path is lost (%d read/write calls)", rw)
	case r.t.ExpectSplice && rw > splices:
		o.note("FAILURE: more read/write (%d) than splice (%d) calls during bulk transfer: bytes are copied through user space", rw, splices)
	case r.t.ForbidSplice && splices > 0:
		o.note("FAILURE: zero_copy off but %d splice(2) calls during bulk transfer", splices)
	case r.t.ExpectSplice:
		zeroCopy = 1
	}
	if r.t.ExpectSplice {
		o.set("zero_copy_ok", zeroCopy)
	}
	return o, nil
}
