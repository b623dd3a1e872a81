package main

import (
	"errors"
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

const wrkKeepAlive = `Running 1s test @ http://127.0.0.1:18082/
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   499.13us    1.30ms  15.75ms   94.67%
    Req/Sec    16.31k     2.77k   20.28k    72.73%
  Latency Distribution
     50%  177.00us
     75%  322.00us
     90%  794.00us
     99%    7.00ms
  35701 requests in 1.10s, 4.39MB read
Requests/sec:  32410.46
Transfer/sec:      3.99MB
`

const wrkErrors = `Running 2s test @ http://127.0.0.1:1/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.02s   200.00ms   1.99s    70.00%
    Req/Sec     1.00k   100.00     1.20k    70.00%
  Latency Distribution
     50%    1.00s
     99%    1.50m
  2000 requests in 2.00m, 1.50GB read
  Socket errors: connect 3, read 4, write 5, timeout 6
  Non-2xx or 3xx responses: 7
Requests/sec:    16.67
Transfer/sec:     12.80MB
`

func TestParseWrk(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    wrkResult
		wantErr bool
	}{
		{name: "keep-alive with latency", in: wrkKeepAlive, want: wrkResult{
			Requests: 35701, Seconds: 1.1, BytesRead: 4.39 * (1 << 20), ReqPerSec: 32410.46,
			LatencyP50: 177 * time.Microsecond, LatencyP99: 7 * time.Millisecond, LatencyMean: 499130 * time.Nanosecond,
		}},
		{name: "errors, minutes and GB", in: wrkErrors, want: wrkResult{
			Requests: 2000, Seconds: 120, BytesRead: 1.5 * (1 << 30), ReqPerSec: 16.67,
			LatencyP50: time.Second, LatencyP99: 90 * time.Second, LatencyMean: 1020 * time.Millisecond,
			SocketErrs: 18, Non2xx3xx: 7,
		}},
		{name: "empty", in: "", wantErr: true},
		{name: "no rate line", in: "  10 requests in 1.00s, 1.00KB read\n", wantErr: true},
		{name: "bad unit", in: strings.Replace(wrkKeepAlive, "4.39MB", "4.39XB", 1), wantErr: true},
		{name: "NaN rate", in: strings.Replace(wrkKeepAlive, "32410.46", "NaN", 1), wantErr: true},
		{name: "negative latency", in: strings.Replace(wrkKeepAlive, "7.00ms", "-7.00ms", 1), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseWrk(tt.in)
			if tt.wantErr {
				if !errors.Is(err, errWrkFormat) {
					t.Fatalf("err %v, want errWrkFormat", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got.BytesRead-tt.want.BytesRead) > 1 || math.Abs(got.Seconds-tt.want.Seconds) > 1e-9 {
				t.Errorf("bytes %v in %vs, want %v in %vs", got.BytesRead, got.Seconds, tt.want.BytesRead, tt.want.Seconds)
			}
			got.BytesRead, got.Seconds = tt.want.BytesRead, tt.want.Seconds
			if got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func FuzzParseWrk(f *testing.F) {
	f.Add(wrkKeepAlive)
	f.Add(wrkErrors)
	f.Add("  1 requests in 1s, 1B read\nRequests/sec: 1\n")
	f.Fuzz(func(t *testing.T, in string) {
		r, err := parseWrk(in)
		if err != nil {
			return
		}
		if r.Requests < 0 || !(r.Seconds >= 0) || !(r.BytesRead >= 0) || !(r.ReqPerSec >= 0) ||
			r.LatencyP50 < 0 || r.LatencyP99 < 0 || r.SocketErrs < 0 || r.Non2xx3xx < 0 {
			t.Fatalf("accepted impossible values %+v from %q", r, in)
		}
	})
}

const statLine = "4242 (my (odd) proc) S 1 4242 4242 0 -1 4194560 1024 0 0 0 1234 567 89 10 20 0 4 0 100 1000000 2500 " +
	"18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    procStat
		wantErr bool
	}{
		{name: "comm with spaces and parens", in: statLine,
			want: procStat{PID: 4242, Comm: "my (odd) proc", State: 'S', PPID: 1, UTime: 1234, STime: 567, CUTime: 89, CSTime: 10}},
		{name: "negative cutime", in: strings.Replace(statLine, " 89 ", " -89 ", 1), wantErr: true},
		{name: "truncated", in: "1 (x) S 0 1 1", wantErr: true},
		{name: "no comm", in: "1 x S 0", wantErr: true},
		{name: "bad utime", in: strings.Replace(statLine, " 1234 ", " -1 ", 1), wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcStat([]byte(tt.in))
			if tt.wantErr {
				if !errors.Is(err, errProcFormat) {
					t.Fatalf("err %v, want errProcFormat", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestReadOwnStat reads the test process's own stat: the live format.
func TestReadOwnStat(t *testing.T) {
	st, err := readProcStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.PID != os.Getpid() || st.State == 0 {
		t.Errorf("own stat %+v", st)
	}
	if _, err := rssKB(os.Getpid()); err != nil {
		t.Error(err)
	}
	if _, err := slabKB(); err != nil {
		t.Error(err)
	}
}

func FuzzParseProcStat(f *testing.F) {
	f.Add(statLine)
	f.Add("1 () R 0 0 0 0 0 0 0 0 0 0 0 0")
	f.Fuzz(func(t *testing.T, in string) {
		st, err := parseProcStat([]byte(in))
		if err == nil && (st.State == 0 || !strings.Contains(in, "(")) {
			t.Fatalf("accepted %q as %+v", in, st)
		}
	})
}

func TestParseKB(t *testing.T) {
	status := "Name:\tx\nVmPeak:\t  1000 kB\nVmRSS:\t   2048 kB\nThreads:\t4\n"
	tests := []struct {
		name, in, key string
		want          int64
		wantErr       bool
	}{
		{name: "VmRSS", in: status, key: "VmRSS", want: 2048},
		{name: "unitless", in: status, key: "Threads", want: 4},
		{name: "meminfo slab", in: "MemTotal: 10 kB\nSlab:     512 kB\n", key: "Slab", want: 512},
		{name: "missing", in: status, key: "Slab", wantErr: true},
		{name: "prefix is not the key", in: "VmRSSx: 1 kB\n", key: "VmRSS", wantErr: true},
		{name: "wrong unit", in: "Slab: 1 MB\n", key: "Slab", wantErr: true},
		{name: "negative", in: "Slab: -1 kB\n", key: "Slab", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseKB([]byte(tt.in), tt.key)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("got %d, %v; want %d, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func FuzzParseKB(f *testing.F) {
	f.Add("VmRSS:\t 2048 kB\n")
	f.Add("Slab: 1\n")
	f.Fuzz(func(t *testing.T, in string) {
		if n, err := parseKB([]byte(in), "VmRSS"); err == nil && n < 0 {
			t.Fatalf("negative %d from %q", n, in)
		}
	})
}

const netTCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1234 1 0 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 1235 1 0 20 4 30 10 -1
   2: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1236 1 0 100 0 0 10 0
`

func TestParseListeningPorts(t *testing.T) {
	got, err := parseListeningPorts([]byte(netTCP))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[8080] || !got[80] {
		t.Errorf("got %v, want LISTEN on 8080 and 80 only", got)
	}
	if _, err := parseListeningPorts([]byte("hdr\n 0: nocolon 0 0A\n")); !errors.Is(err, errProcFormat) {
		t.Errorf("bad address: err %v", err)
	}
	if _, err := listeningPorts(); err != nil {
		t.Errorf("live /proc/net/tcp: %v", err)
	}
}

// netUDP is /proc/net/udp: a bound socket on 53 (state 07), and one
// connected (state 01) from 40000.
const netUDP = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  1: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0000000000000000 0
  2: 0100007F:9C40 0100007F:0035 01 00000000:00000000 00:00000000 00000000     0        0 2 2 0000000000000000 0
`

func TestParseBoundUDP(t *testing.T) {
	got, err := parseBoundPorts([]byte(netUDP), udpUnconnected)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !got[53] {
		t.Errorf("got %v, want 53 only", got)
	}
}

func FuzzParseListeningPorts(f *testing.F) {
	f.Add(netUDP)
	f.Add(netTCP)
	f.Fuzz(func(t *testing.T, in string) {
		ports, err := parseListeningPorts([]byte(in))
		for p := range ports {
			if err != nil || p < 0 || p > 65535 {
				t.Fatalf("port %d (err %v) from %q", p, err, in)
			}
		}
	})
}

const procStatCPU = "cpu  100 5 50 1000 20 3 2 1 7 0\ncpu0 50 2 25 500 10 1 1 0 0 0\nintr 1\n"

func TestParseCPUTotals(t *testing.T) {
	got, err := parseCPUTotals([]byte(procStatCPU))
	if err != nil {
		t.Fatal(err)
	}
	// busy: user+nice+system+irq+softirq+steal; guest (7) is inside user.
	if want := (cpuTotals{Busy: 161, All: 1181}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	for _, bad := range []string{"", "cpu0 1 2 3 4 5 6 7 8\n", "cpu 1 2 3\n", "cpu 1 2 3 4 5 6 7 x\n", "cpu 1 2 3 4 5 6 7 99999999999999999999\n"} {
		if _, err := parseCPUTotals([]byte(bad)); !errors.Is(err, errProcFormat) {
			t.Errorf("%q: err %v, want errProcFormat", bad, err)
		}
	}
	if _, err := readCPUTotals(); err != nil {
		t.Errorf("live /proc/stat: %v", err)
	}
}

func FuzzParseCPUTotals(f *testing.F) {
	f.Add(procStatCPU)
	f.Fuzz(func(t *testing.T, in string) {
		c, err := parseCPUTotals([]byte(in))
		if err == nil && c.All < c.Busy {
			t.Fatalf("busy %d above total %d from %q", c.Busy, c.All, in)
		}
	})
}

func TestOthersShare(t *testing.T) {
	a := cpuMark{sys: cpuTotals{Busy: 100, All: 1000}, own: 50, ok: true}
	b := cpuMark{sys: cpuTotals{Busy: 700, All: 2000}, own: 350, ok: true}
	if got := othersShare(a, b); got != 0.3 { // (600-300)/1000
		t.Errorf("got %v, want 0.3", got)
	}
	if got := othersShare(a, cpuMark{}); got != -1 {
		t.Errorf("unknown mark: got %v, want -1", got)
	}
	b.own = 5000 // own sampled later than the machine: never negative
	if got := othersShare(a, b); got != 0 {
		t.Errorf("got %v, want 0", got)
	}
}

func TestRotate(t *testing.T) {
	ts := []string{"a", "b", "c"}
	for k, want := range []string{"abc", "bca", "cab", "abc", "bca"} {
		if got := strings.Join(rotate(ts, k), ""); got != want {
			t.Errorf("rotate(%v, %d) = %s, want %s", ts, k, got, want)
		}
	}
	if strings.Join(ts, "") != "abc" {
		t.Errorf("rotate changed its input: %v", ts)
	}
	if got := rotate([]string(nil), 3); len(got) != 0 {
		t.Errorf("rotate(nil) = %v", got)
	}
}
