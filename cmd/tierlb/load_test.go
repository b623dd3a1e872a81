package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tierlb/tierlb/internal/testkit"
)

// killable is a greeting echo backend that can be killed: its port starts
// refusing and its open connections are reset, as when a process dies.
type killable struct {
	name  string
	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startKillable(t *testing.T, name string) *killable {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	k := &killable{name: name, ln: ln, conns: map[net.Conn]struct{}{}}
	k.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			k.mu.Lock()
			k.conns[c] = struct{}{}
			k.mu.Unlock()
			k.wg.Go(func() {
				defer func() {
					k.mu.Lock()
					delete(k.conns, c)
					k.mu.Unlock()
					c.Close()
				}()
				if _, err := io.WriteString(c, name+"\n"); err != nil {
					return
				}
				_, _ = io.Copy(c, c)
			})
		}
	})
	t.Cleanup(k.kill)
	return k
}

func (k *killable) addr() string { return k.ln.Addr().String() }

// kill closes the listener and resets every open connection.
func (k *killable) kill() {
	k.ln.Close()
	k.mu.Lock()
	for c := range k.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		c.Close()
	}
	k.mu.Unlock()
	k.wg.Wait()
}

// loadResult counts what a bounded load loop saw.
type loadResult struct {
	served   atomic.Int64 // greeting and echo both arrived
	inFlight atomic.Int64 // greeted by a backend that then died under it
	failed   atomic.Int64 // never reached a backend: what a proxy must prevent
	// killed is when a backend's kill had finished (UnixNano; 0 before).
	// A connection begun earlier may sit in the dying backend's accept
	// queue, which the kill resets: established, so no proxy may retry it.
	killed atomic.Int64
	mu     sync.Mutex
	errs   []string
	byName map[string]int
}

func newLoadResult() *loadResult { return &loadResult{byName: map[string]int{}} }

// servedBy is how many connections backend name has served so far.
func (r *loadResult) servedBy(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byName[name]
}

func (r *loadResult) fail(format string, args ...any) {
	r.failed.Add(1)
	r.mu.Lock()
	if len(r.errs) < 5 {
		r.errs = append(r.errs, fmt.Sprintf(format, args...))
	}
	r.mu.Unlock()
}

// runLoad runs workers sequential connections against addr until Stop,
// or at most maxConns connections or 30 s in all, at the rate testkit
// allows for that many. Each connection reads the backend's greeting, then
// checks one echo; r counts how each ended.
func runLoad(t *testing.T, r *loadResult, addr string, workers int, maxConns int64) *testkit.Load {
	var seq atomic.Int64
	pace := testkit.Pace{Rate: testkit.MaxRate(maxConns), Count: maxConns, Within: 30 * time.Second}
	return testkit.StartLoad(t, workers, pace, func(context.Context) error {
		oneConn(r, addr, fmt.Sprintf("c%d", seq.Add(1)))
		return nil // r has counted it
	})
}

// cutByKill counts err as a connection cut in flight when it is a reset
// and the connection began before a kill had finished.
func (r *loadResult) cutByKill(err error, began int64) bool {
	k := r.killed.Load()
	if !errors.Is(err, syscall.ECONNRESET) || (k != 0 && began >= k) {
		return false
	}
	r.inFlight.Add(1)
	return true
}

func oneConn(r *loadResult, addr, msg string) {
	began := time.Now().UnixNano()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		// The handshake with the proxy completes in the kernel; if the
		// backend the proxy picked dies before the dialer reads SO_ERROR,
		// the propagated reset surfaces here rather than at the first read.
		if r.cutByKill(err, began) {
			return
		}
		r.fail("dial: %v", err)
		return
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	name, err := br.ReadString('\n')
	if err != nil {
		if r.cutByKill(err, began) {
			return
		}
		r.fail("no greeting: %v", err)
		return
	}
	name = strings.TrimSpace(name)
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		r.inFlight.Add(1)
		return
	}
	got, err := br.ReadString('\n')
	if err != nil {
		r.inFlight.Add(1)
		return
	}
	if strings.TrimSpace(got) != msg {
		r.fail("echo from %s: got %q, want %q", name, got, msg)
		return
	}
	r.served.Add(1)
	r.mu.Lock()
	r.byName[name]++
	r.mu.Unlock()
}

func TestKillingOneOfThreeBackendsUnderLoadFailsNoClient(t *testing.T) {
	ks := []*killable{startKillable(t, "a"), startKillable(t, "b"), startKillable(t, "c")}
	file := writeFile(t, "tierlb.yaml", fmt.Sprintf(`admin: {listen: '127.0.0.1:0'}
log: {access: false}
services:
  - name: app
    listen: 127.0.0.1:0
    retries: 2
    health: {type: tcp, interval: 100ms, timeout: 200ms, rise: 1, fall: 2, passive: {max_fails: 1, fail_timeout: 5s}}
    backends: {static: ['%s', '%s', '%s']}
`, ks[0].addr(), ks[1].addr(), ks[2].addr()))
	p := startBinary(t, "run", "--config", file)
	addr := p.serviceAddr(t, "app")
	for _, k := range ks {
		waitGreetingFrom(t, addr, k.name)
	}

	res := newLoadResult()
	load := runLoad(t, res, addr, 4, 3000)
	// Let the load reach all three, kill b, let it run on two, stop.
	testkit.Eventually(t, 10*time.Second, "the load to reach every backend", func() bool {
		return res.servedBy("a") > 0 && res.servedBy("b") > 0 && res.servedBy("c") > 0
	})
	ks[1].kill()
	res.killed.Store(time.Now().UnixNano())
	afterKill := res.served.Load() + 200
	testkit.Eventually(t, 20*time.Second, "200 connections served after the kill", func() bool {
		return res.served.Load() >= afterKill
	})
	load.Stop()

	t.Logf("served %d, cut in flight by the kill %d, failed %d, per backend %v",
		res.served.Load(), res.inFlight.Load(), res.failed.Load(), res.byName)
	if n := res.failed.Load(); n != 0 {
		t.Errorf("%d client connections never reached a backend; first errors: %v", n, res.errs)
	}
	if res.served.Load() < 100 {
		t.Errorf("only %d connections served: the load loop did not run", res.served.Load())
	}
	for _, name := range []string{"a", "c"} {
		if res.byName[name] == 0 {
			t.Errorf("backend %s got no connections", name)
		}
	}
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.Wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
}

func TestReloadUnderLoadFailsNoClient(t *testing.T) {
	a1, a2, b, c := startKillable(t, "a1"), startKillable(t, "a2"), startKillable(t, "b"), startKillable(t, "c")
	ports := map[string]string{"a": testkit.ClosedPort(t), "b": testkit.ClosedPort(t), "c": testkit.ClosedPort(t)}
	config := func(services string) string {
		return "admin: {listen: '127.0.0.1:0'}\nlog: {access: false}\nshutdown: {drain_timeout: 10s}\nservices:\n" + services
	}
	before := config(fmt.Sprintf(`  - {name: a, listen: '%s', backends: {static: ['%s']}}
  - {name: b, listen: '%s', backends: {static: ['%s']}}
`, ports["a"], a1.addr(), ports["b"], b.addr()))
	// a changes balance (a new pool) and gains a backend; b goes; c comes.
	after := config(fmt.Sprintf(`  - {name: a, listen: '%s', balance: leastconn, backends: {static: ['%s', '%s']}}
  - {name: c, listen: '%s', backends: {static: ['%s']}}
`, ports["a"], a1.addr(), a2.addr(), ports["c"], c.addr()))

	file := writeFile(t, "tierlb.yaml", before)
	p := startBinary(t, "run", "--config", file)
	admin := p.WaitLog(t, `msg="admin listening" addr=(\S+)`)
	waitGreetingFrom(t, ports["a"], "a1")
	waitGreetingFrom(t, ports["b"], "b") // b's backend joins at its first check
	openB, readB := dialLine(t, ports["b"])

	res := newLoadResult()
	load := runLoad(t, res, ports["a"], 4, 5000)
	testkit.Eventually(t, 10*time.Second, "the load to run before the reload", func() bool { return res.served.Load() >= 50 })

	if err := os.WriteFile(file, []byte(after), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.WaitLog(t, `msg="service removed: draining" service=b`)
	if got := waitGreeting(t, ports["c"]); got != "c" {
		t.Errorf("added service c answered from %q", got)
	}
	if _, err := net.DialTimeout("tcp", ports["b"], time.Second); err == nil {
		t.Error("removed service b still accepts")
	}
	if err := echo(openB, readB, "still here"); err != nil {
		t.Errorf("open connection of removed service b: %v", err)
	}
	// The load goes on across the reload until the added backend serves.
	testkit.Eventually(t, 10*time.Second, "the backend added by the reload to serve", func() bool { return res.servedBy("a2") >= 20 })
	load.Stop()
	openB.Close()
	p.WaitLog(t, `msg="service drained" service=b`)
	// The drained service's series are gone; the others' stay.
	if got := metric(t, admin, `tierlb_connections_accepted_total{service="c"}`); got == "0" {
		t.Error("service c's accepted counter is 0 after its greeting")
	}
	for _, name := range []string{"tierlb_connections_accepted_total", "tierlb_connections_rejected_total",
		"tierlb_backend_connect_duration_seconds_count", "tierlb_connection_duration_seconds_count"} {
		if strings.Contains(metricLines(t, admin, name), `service="b"`) {
			t.Errorf("%s still has series of the removed service b", name)
		}
	}

	t.Logf("served %d, failed %d, per backend %v", res.served.Load(), res.failed.Load(), res.byName)
	if n := res.failed.Load() + res.inFlight.Load(); n != 0 {
		t.Errorf("%d connections to service a failed across the reload; first errors: %v", n, res.errs)
	}
	if res.byName["a2"] == 0 {
		t.Error("the backend added by the reload got no connections")
	}
	if got := metric(t, admin, `tierlb_config_reloads_total{result="ok"}`); got != "1" {
		t.Errorf("reloads ok = %s, want 1", got)
	}
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.Wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
}
