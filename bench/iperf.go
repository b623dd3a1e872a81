package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os/exec"
	"strconv"
	"time"
)

// iperfResult is the receiver's view of one iperf3 test.
type iperfResult struct {
	Bytes   float64
	Seconds float64
	// Datagrams and Lost are what the server received and counted missing
	// (iperf3 -u only; zero for TCP).
	Datagrams, Lost float64
}

func (r iperfResult) MBps() float64 { return r.Bytes / r.Seconds / 1e6 }

var errIperfFormat = errors.New("unexpected iperf3 output")

// parseIperf reads `iperf3 -J`: end.sum_received is what arrived at the
// server, i.e. what really crossed the proxy. A top-level "error" wins.
func parseIperf(b []byte) (iperfResult, error) {
	var doc struct {
		Error string `json:"error"`
		End   struct {
			SumReceived *struct {
				Bytes   float64 `json:"bytes"`
				Seconds float64 `json:"seconds"`
				Packets float64 `json:"packets"`
				Lost    float64 `json:"lost_packets"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return iperfResult{}, fmt.Errorf("iperf3 json: %w", errors.Join(errIperfFormat, err))
	}
	if doc.Error != "" {
		return iperfResult{}, fmt.Errorf("iperf3: %s", doc.Error)
	}
	s := doc.End.SumReceived
	if s == nil {
		return iperfResult{}, fmt.Errorf("iperf3: no end.sum_received: %w", errIperfFormat)
	}
	if !(s.Seconds > 0) || !(s.Bytes >= 0) || math.IsInf(s.Bytes, 0) || math.IsInf(s.Seconds, 0) {
		return iperfResult{}, fmt.Errorf("iperf3: %g bytes in %g s: %w", s.Bytes, s.Seconds, errIperfFormat)
	}
	if !(s.Lost >= 0) || !(s.Packets >= s.Lost) || math.IsInf(s.Packets, 0) {
		return iperfResult{}, fmt.Errorf("iperf3: %g datagrams of which %g lost: %w", s.Packets, s.Lost, errIperfFormat)
	}
	return iperfResult{Bytes: s.Bytes, Seconds: s.Seconds, Datagrams: s.Packets - s.Lost, Lost: s.Lost}, nil
}

// udpStream is iperf3 -u's fixed offered load: -b bits/s of -l byte datagrams.
type udpStream struct {
	Rate string
	Len  int
}

// runIperf starts a one-shot iperf3 server on the backend port, waits for it
// to listen (without connecting: that would be its one test), then runs the
// client against addr (the proxy's iperf3 port) for d: one TCP stream, or
// with udp a UDP stream at udp's fixed rate.
func runIperf(ctx context.Context, e *env, addr string, d time.Duration, udp *udpStream) (iperfResult, error) {
	port := strconv.Itoa(e.iperfPort)
	srv, err := e.procs.start("iperf3-server", []string{e.tools.path("iperf3"), "-s", "-1", "-B", "127.0.0.1", "-p", port}, nil, nil)
	if err != nil {
		return iperfResult{}, err
	}
	defer e.procs.stop(srv, time.Second)
	if err := waitListening(ctx, srv, []int{e.iperfPort}, 10*time.Second); err != nil {
		return iperfResult{}, err
	}
	host, cport, err := net.SplitHostPort(addr)
	if err != nil {
		return iperfResult{}, fmt.Errorf("iperf3 address %q: %w", addr, err)
	}
	secs := max(1, int(d.Round(time.Second)/time.Second))
	cctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+30*time.Second)
	defer cancel()
	args := []string{"-c", host, "-p", cport, "-t", strconv.Itoa(secs), "-J", "--connect-timeout", "3000"}
	if udp != nil {
		args = append(args, "-u", "-b", udp.Rate, "-l", strconv.Itoa(udp.Len))
	}
	out, err := exec.CommandContext(cctx, e.tools.path("iperf3"), args...).Output()
	res, perr := parseIperf(out)
	if perr != nil {
		return res, fmt.Errorf("iperf3 through %s: %w", addr, errors.Join(perr, err))
	}
	return res, nil
}
