package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// wrkResult is what the bench reads from wrk's text report.
type wrkResult struct {
	Requests    int64
	Seconds     float64 // the run's real duration as wrk reports it
	BytesRead   float64
	ReqPerSec   float64
	LatencyP50  time.Duration // zero without --latency
	LatencyP99  time.Duration
	SocketErrs  int64 // connect + read + write + timeout
	Non2xx3xx   int64
	LatencyMean time.Duration
}

var errWrkFormat = errors.New("unexpected wrk output")

// wrkLoad is one wrk invocation.
type wrkLoad struct {
	URL      string
	Conns    int
	Threads  int
	Duration time.Duration
	Headers  []string
	Script   string // a Lua script (-s), or ""
	// MaxRate bounds the load in rate as well as time: each wrk thread
	// stops after its share of MaxRate × the run's seconds, so a faster
	// machine does not open more connections than the run is meant to.
	// 0: no bound; it cannot go with Script.
	MaxRate int
}

// wrkStopScript is the wrk Lua script that stops each thread after
// perThread responses.
func wrkStopScript(perThread int) string {
	return fmt.Sprintf(`-- written by bench: at most %d responses per thread
local done = 0
function response(status, headers, body)
  done = done + 1
  if done >= %d then wrk.thread:stop() end
end
`, perThread, perThread)
}

// runWrk runs wrk with --latency, bounded by its own -d and a context
// deadline in case it hangs.
func runWrk(ctx context.Context, wrk string, l wrkLoad) (wrkResult, error) {
	secs := max(1, int(l.Duration.Round(time.Second)/time.Second))
	args := []string{"-t", strconv.Itoa(min(l.Threads, l.Conns)), "-c", strconv.Itoa(l.Conns),
		"-d", strconv.Itoa(secs) + "s", "--timeout", "5s", "--latency"}
	for _, h := range l.Headers {
		args = append(args, "-H", h)
	}
	script := l.Script
	if l.MaxRate > 0 {
		if script != "" {
			return wrkResult{}, fmt.Errorf("wrk %s: a rate bound and a script of its own", l.URL)
		}
		f, err := os.CreateTemp("", "bench-wrk-*.lua")
		if err != nil {
			return wrkResult{}, err
		}
		defer os.Remove(f.Name())
		per := max(1, l.MaxRate*secs/min(l.Threads, l.Conns))
		_, err = f.WriteString(wrkStopScript(per))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return wrkResult{}, fmt.Errorf("write wrk script: %w", err)
		}
		script = f.Name()
	}
	if script != "" {
		args = append(args, "-s", script)
	}
	args = append(args, l.URL)
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, wrk, args...).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %w: %s", strings.Join(args, " "), err, short(out))
	}
	res, err := parseWrk(string(out))
	if err != nil {
		return res, fmt.Errorf("wrk %s: %w", l.URL, err)
	}
	return res, nil
}

// parseWrk reads wrk 4.x's report:
//
//	    Latency     1.23ms    2.34ms  50.00ms   90.00%
//	  Latency Distribution
//	     50%    1.00ms
//	     99%    7.70ms
//	  400000 requests in 10.00s, 50.00MB read
//	  Socket errors: connect 0, read 0, write 0, timeout 0
//	  Non-2xx or 3xx responses: 5
//	Requests/sec:  40000.00
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	var sawSummary, sawRate bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 2 && f[0] == "Latency" && r.LatencyMean == 0:
			d, err := parseWrkDuration(f[1])
			if err != nil {
				return r, err
			}
			r.LatencyMean = d
		case len(f) == 2 && (f[0] == "50%" || f[0] == "99%"):
			d, err := parseWrkDuration(f[1])
			if err != nil {
				return r, err
			}
			if f[0] == "50%" {
				r.LatencyP50 = d
			} else {
				r.LatencyP99 = d
			}
		case len(f) == 6 && f[1] == "requests" && f[2] == "in" && f[5] == "read":
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil || n < 0 {
				return r, fmt.Errorf("request count %q: %w", f[0], errWrkFormat)
			}
			d, err := parseWrkDuration(strings.TrimSuffix(f[3], ","))
			if err != nil {
				return r, err
			}
			b, err := parseWrkBytes(f[4])
			if err != nil {
				return r, err
			}
			r.Requests, r.Seconds, r.BytesRead, sawSummary = n, d.Seconds(), b, true
		case len(f) >= 3 && f[0] == "Socket" && f[1] == "errors:":
			// "Socket errors: connect 0, read 0, write 0, timeout 0"
			for i := 2; i+1 < len(f); i += 2 {
				n, err := strconv.ParseInt(strings.TrimSuffix(f[i+1], ","), 10, 64)
				if err != nil || n < 0 {
					return r, fmt.Errorf("socket errors %q: %w", f[i+1], errWrkFormat)
				}
				r.SocketErrs += n
			}
		case len(f) == 5 && f[0] == "Non-2xx":
			n, err := strconv.ParseInt(f[4], 10, 64)
			if err != nil || n < 0 {
				return r, fmt.Errorf("non-2xx count %q: %w", f[4], errWrkFormat)
			}
			r.Non2xx3xx = n
		case len(f) == 2 && f[0] == "Requests/sec:":
			v, err := parseFinite(f[1], 1e12)
			if err != nil {
				return r, fmt.Errorf("requests/sec %q: %w", f[1], errWrkFormat)
			}
			r.ReqPerSec, sawRate = v, true
		}
	}
	if !sawSummary || !sawRate {
		return r, fmt.Errorf("no summary in %q: %w", short([]byte(out)), errWrkFormat)
	}
	return r, nil
}

// parseWrkDuration reads wrk's "712.00us", "7.70ms", "1.02s", "2.00m", "1.00h".
func parseWrkDuration(s string) (time.Duration, error) {
	units := []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := parseFinite(num, 1e6)
			if err != nil {
				return 0, fmt.Errorf("duration %q: %w", s, errWrkFormat)
			}
			return time.Duration(v * float64(u.unit)), nil
		}
	}
	return 0, fmt.Errorf("duration %q: %w", s, errWrkFormat)
}

// parseWrkBytes reads wrk's binary-prefixed sizes: "512.00B", "50.00MB".
func parseWrkBytes(s string) (float64, error) {
	units := []struct {
		suffix string
		mult   float64
	}{{"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"TB", 1 << 40}, {"PB", 1 << 50}, {"B", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := parseFinite(num, 1e9)
			if err != nil {
				return 0, fmt.Errorf("size %q: %w", s, errWrkFormat)
			}
			return v * u.mult, nil
		}
	}
	return 0, fmt.Errorf("size %q: %w", s, errWrkFormat)
}

// parseFinite parses a float in [0, limit]; NaN and Inf are errors.
func parseFinite(s string, limit float64) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || !(v >= 0 && v <= limit) {
		return 0, fmt.Errorf("number %q: %w", s, errWrkFormat)
	}
	return v, nil
}
