package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The service-count scenarios spread the same wrk clients over 1, 20 and
// 200 services, one port each, and over one service listening on a range
// of 200 ports. wrk runs svcConns threads of one keep-alive connection each;
// thread i talks to port i mod the port count (wrk's setup(thread) sets each
// thread's address), so the load generator is the same in every row and
// only how the ports map to services changes. What a proxy costs per
// service shows in its threads, RSS and descriptors, read halfway through
// the load, and in its CPU per request.

// svcConns is how many connections (and wrk threads) the service-count
// scenarios use: one per service at the largest count, so that every
// service is busy.
const svcConns = 200

// svcMaxRPS bounds the load in count: each wrk thread stops after its share
// of svcMaxRPS × the run's seconds; with one request in flight per
// connection it is also bounded in rate.
const svcMaxRPS = 500_000

// wrkSpreadScript is the wrk Lua script that gives thread i the address
// 127.0.0.1:ports[i mod len(ports)] and stops each thread after perThread
// responses.
func wrkSpreadScript(ports []int, perThread int) string {
	list := make([]string, len(ports))
	for i, p := range ports {
		list[i] = strconv.Itoa(p)
	}
	return fmt.Sprintf(`-- written by bench: one port per wrk thread, round robin
local ports = {%s}
local n = 0
function setup(thread)
  n = n + 1
  thread.addr = wrk.lookup("127.0.0.1", tostring(ports[(n - 1) %% #ports + 1]))[1]
end
`, strings.Join(list, ", ")) + wrkStopScript(perThread)
}

func runServices(ctx context.Context, e *env, r *running) (outcome, error) {
	var o outcome
	var ports []int
	for _, a := range r.svcAddrs {
		_, p, err := net.SplitHostPort(a)
		if err != nil {
			return o, fmt.Errorf("service address %q: %w", a, err)
		}
		port, err := strconv.Atoi(p)
		if err != nil {
			return o, fmt.Errorf("service address %q: %w", a, err)
		}
		ports = append(ports, port)
	}
	if len(ports) == 0 {
		return o, fmt.Errorf("services: no ports")
	}
	e.runSeq++
	script := filepath.Join(e.tmp, fmt.Sprintf("spread-%03d.lua", e.runSeq))
	perThread := max(1, int(svcMaxRPS*e.opts.Duration.Seconds())/svcConns)
	if err := os.WriteFile(script, []byte(wrkSpreadScript(ports, perThread)), 0o644); err != nil {
		return o, fmt.Errorf("write wrk script: %w", err)
	}
	// The footprint is read halfway through the load, with every
	// connection open, and RSS once more at its end.
	type footprint struct {
		u       usage
		threads int64
	}
	mid := make(chan footprint, 1)
	timer := time.AfterFunc(e.opts.Duration/2, func() { mid <- footprint{measureUsage(r), threadCount(r.pids())} })
	defer timer.Stop()
	res, cpu, err := measuredWrk(ctx, e, r, wrkLoad{URL: "http://" + r.svcAddrs[0] + "/", Conns: svcConns,
		Threads: svcConns, Duration: e.opts.Duration, Script: script})
	if err != nil {
		return o, err
	}
	o.set("rps", res.ReqPerSec)
	if r.t.Proxy {
		o.setPerUnit("cpu_per_100k", cpu, float64(res.Requests), 1e5)
		select {
		case f := <-mid:
			end := measureUsage(r)
			o.set("threads", float64(f.threads))
			o.set("rss_mb", float64(max(f.u.RSSKB, end.RSSKB))/1024)
			o.set("fds", float64(f.u.FDs))
		default:
			o.note("footprint not read: the load ended before its midpoint")
		}
	}
	errorShare(&o, res)
	return o, nil
}

// threadCount sums the Threads: line of /proc/PID/status over pids
// (nginx's master and workers, tierlb's OS threads); vanished processes
// count zero.
func threadCount(pids []int) int64 {
	var n int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		if t, err := parseKB(b, "Threads"); err == nil {
			n += t
		}
	}
	return n
}

// freePortRange finds n consecutive loopback TCP ports that are free now,
// below the kernel's ephemeral range (so that clients' own ports do not
// land in it while it is in use), and returns the first.
func freePortRange(n int) (int, error) {
	top := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if lo, err := strconv.Atoi(f[0]); err == nil && lo > 10000+n {
				top = lo
			}
		}
	}
	const bottom = 10000
	if top-bottom < n {
		return 0, fmt.Errorf("no room for %d consecutive ports between %d and %d", n, bottom, top)
	}
	for range 50 {
		lo := bottom + rand.IntN(top-bottom-n)
		if rangeFree(lo, n) {
			return lo, nil
		}
	}
	return 0, fmt.Errorf("no %d consecutive free ports found between %d and %d", n, bottom, top)
}

// rangeFree binds every port of lo..lo+n-1 at once, then lets them go.
func rangeFree(lo, n int) bool {
	var held []net.Listener
	defer func() {
		for _, ln := range held {
			ln.Close()
		}
	}()
	for p := lo; p < lo+n; p++ {
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			return false
		}
		held = append(held, ln)
	}
	return true
}

// freePortTCPUDP is a loopback port free for both TCP and UDP now (iperf3
// takes both on one port; a DNS front is UDP, and tierlb or nginx may add a
// TCP service beside it).
func freePortTCPUDP() (int, error) {
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find a free port: %w", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		ln.Close()
		if err == nil {
			pc.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("find a port free for TCP and UDP: none in 20 tries")
}

// waitBoundUDP polls /proc/net/udp until every port has a socket bound to
// it, the process exits, or the timeout passes. It sends nothing.
func waitBoundUDP(ctx context.Context, p *proc, ports []int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		b, err := os.ReadFile("/proc/net/udp")
		if err != nil {
			return fmt.Errorf("read /proc/net/udp: %w", err)
		}
		bound, err := parseBoundPorts(b, udpUnconnected)
		if err != nil {
			return err
		}
		missing := 0
		for _, port := range ports {
			if !bound[port] {
				missing++
			}
		}
		switch {
		case missing == 0:
			return nil
		case p.exited():
			return fmt.Errorf("%s %w (%v): %s", p.name, errExited, p.waitErr, p.logTail())
		case time.Now().After(deadline):
			return fmt.Errorf("%s: UDP ports %v not bound after %s: %s", p.name, ports, timeout, p.logTail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}
