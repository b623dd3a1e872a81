package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clkTck is USER_HZ, the unit of utime and stime in /proc/PID/stat.
const clkTck = 100

// treeTicks returns the utime+stime of pid and of its children (nginx's
// workers), read from /proc.
func treeTicks(pid int) uint64 {
	total, _ := ticks(pid)
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		child, err := strconv.Atoi(ent.Name())
		if err != nil || child == pid {
			continue
		}
		if t, ppid := ticks(child); ppid == pid {
			total += t
		}
	}
	return total
}

// ticks reads utime+stime and the parent of pid; fields are counted from
// the last ')' because comm may hold spaces.
func ticks(pid int) (uint64, int) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, 0
	}
	ppid, _ := strconv.Atoi(f[1])
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return ut + st, ppid
}

func loadAvg() float64 {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

type iperfResult struct {
	MBps    float64
	LossPct float64
}

// parseIperfUDP reads `iperf3 -u -J`: what reached the server
// (end.sum_received) and the loss the server counted (end.sum).
func parseIperfUDP(b []byte) (iperfResult, error) {
	var doc struct {
		Error string `json:"error"`
		End   struct {
			Sum *struct {
				LostPercent float64 `json:"lost_percent"`
			} `json:"sum"`
			SumReceived *struct {
				Bytes   float64 `json:"bytes"`
				Seconds float64 `json:"seconds"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return iperfResult{}, fmt.Errorf("iperf3 json: %w", err)
	}
	if doc.Error != "" {
		return iperfResult{}, fmt.Errorf("iperf3: %s", doc.Error)
	}
	if doc.End.Sum == nil || doc.End.SumReceived == nil || !(doc.End.SumReceived.Seconds > 0) || !(doc.End.SumReceived.Bytes >= 0) {
		return iperfResult{}, errors.New("iperf3: no end.sum or end.sum_received with bytes over seconds")
	}
	r := doc.End.SumReceived
	return iperfResult{MBps: r.Bytes / r.Seconds / 1e6, LossPct: doc.End.Sum.LostPercent}, nil
}

// runIperfUDP runs a one-shot iperf3 server on the backend port and the
// client at the fixed rate through port.
func runIperfUDP(ctx context.Context, e *env, port int, o options) (iperfResult, error) {
	srv, err := e.procs.start("iperf3-server", []string{e.iperf3, "-s", "-1", "-B", "127.0.0.1",
		"-p", strconv.Itoa(e.iperfPort)}, filepath.Join(e.dir, "iperf3-server.log"))
	if err != nil {
		return iperfResult{}, err
	}
	defer e.procs.stop(srv)
	// Wait for its TCP listener without connecting (that would be its one test).
	for deadline := time.Now().Add(10 * time.Second); !tcpListening(e.iperfPort); {
		if time.Now().After(deadline) {
			return iperfResult{}, errors.New("iperf3 server does not listen")
		}
		time.Sleep(20 * time.Millisecond)
	}
	secs := max(1, int(o.duration.Round(time.Second)/time.Second))
	cctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(cctx, e.iperf3, "-u", "-c", "127.0.0.1", "-p", strconv.Itoa(port),
		"-b", o.rate, "-l", strconv.Itoa(o.size), "-t", strconv.Itoa(secs), "-J", "--connect-timeout", "3000").Output()
	res, perr := parseIperfUDP(out)
	if perr != nil {
		return res, errors.Join(perr, err)
	}
	return res, nil
}

// tcpListening reports whether /proc/net/tcp has a listener on port.
func tcpListening(port int) bool {
	b, _ := os.ReadFile("/proc/net/tcp")
	want := fmt.Sprintf(":%04X 00000000:0000 0A", port)
	return bytes.Contains(b, []byte(want))
}

type queryResult struct {
	answered, lost int
	seconds        float64
}

// txtQuery is a DNS TXT question for "whoami" with the given ID.
func txtQuery(id uint16) []byte {
	q := []byte{0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 6, 'w', 'h', 'o', 'a', 'm', 'i', 0, 0, 16, 0, 1}
	binary.BigEndian.PutUint16(q, id)
	return q
}

// runQueries keeps one query in flight on each of n client sockets for d;
// an answer not back within 500 ms counts as lost.
func runQueries(ctx context.Context, port, n int, d time.Duration) (queryResult, error) {
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	var mu sync.Mutex
	var total queryResult
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := time.Now()
	end := start.Add(d)
	for i := range n {
		wg.Go(func() {
			c, err := net.Dial("udp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			buf := make([]byte, 512)
			var r queryResult
			for id := uint16(i << 10); time.Now().Before(end) && ctx.Err() == nil; id++ {
				q := txtQuery(id)
				if _, err := c.Write(q); err != nil {
					r.lost++
					continue
				}
				_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
				for {
					m, err := c.Read(buf)
					if err != nil {
						r.lost++
						break
					}
					if m >= 2 && binary.BigEndian.Uint16(buf) == id {
						r.answered++
						break
					}
				}
			}
			mu.Lock()
			total.answered += r.answered
			total.lost += r.lost
			mu.Unlock()
		})
	}
	wg.Wait()
	close(errs)
	total.seconds = time.Since(start).Seconds()
	return total, <-errs
}
