package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

type report struct {
	Started  time.Time         `json:"started"`
	Cores    int               `json:"cores"`
	Rounds   int               `json:"rounds"`
	Duration string            `json:"duration"`
	Rate     string            `json:"rate"`
	Size     int               `json:"len"`
	Clients  int               `json:"clients"`
	Versions map[string]string `json:"versions"`
	Results  []result          `json:"results"`
}

// result is one target in one round.
type result struct {
	Target       string  `json:"target"`
	Round        int     `json:"round"`
	Load1        float64 `json:"load1"`
	IperfMBps    float64 `json:"iperf_mbps"`
	IperfLossPct float64 `json:"iperf_loss_pct"`
	IperfCPU     float64 `json:"iperf_cpu_s"`
	QPS          float64 `json:"queries_per_s"`
	Lost         int     `json:"queries_lost"`
	RRCPU        float64 `json:"rr_cpu_s"`
	CPUPer100k   float64 `json:"cpu_s_per_100k_datagrams"`
	Error        string  `json:"error,omitempty"`
}

// markdown renders medians with the min–max spread over rounds.
func (r *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# UDP bench: tierlb vs nginx stream vs direct\n\n")
	fmt.Fprintf(&b, "%s, %d cores, %d round(s) of %s per load, rounds rotated. `go run ./bench/udp`.\n\n",
		r.Started.Format(time.RFC3339), r.Cores, r.Rounds, r.Duration)
	fmt.Fprintf(&b, "| target | iperf3 -u %s, %d B: received MB/s | loss %% | proxy CPU s | queries/s (%d clients) | unanswered | proxy CPU s per 100k datagrams |\n",
		r.Rate, r.Size, r.Clients)
	b.WriteString("|---|---|---|---|---|---|---|\n")
	for _, t := range []string{"direct", "tierlb", "nginx"} {
		var rs []result
		for _, x := range r.Results {
			if x.Target == t && x.Error == "" {
				rs = append(rs, x)
			}
		}
		if len(rs) == 0 {
			fmt.Fprintf(&b, "| %s | failed: see udp.json | | | | | |\n", t)
			continue
		}
		col := func(f func(result) float64, prec int) string {
			v := make([]float64, len(rs))
			for i, x := range rs {
				v[i] = f(x)
			}
			slices.Sort(v)
			med := v[len(v)/2]
			if len(v)%2 == 0 {
				med = (v[len(v)/2-1] + v[len(v)/2]) / 2
			}
			if len(v) == 1 {
				return fmt.Sprintf("%.*f", prec, med)
			}
			return fmt.Sprintf("%.*f (%.*f–%.*f)", prec, med, prec, v[0], prec, v[len(v)-1])
		}
		cpu := func(s string) string {
			if t == "direct" {
				return "–"
			}
			return s
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", t,
			col(func(x result) float64 { return x.IperfMBps }, 1),
			col(func(x result) float64 { return x.IperfLossPct }, 2),
			cpu(col(func(x result) float64 { return x.IperfCPU }, 2)),
			col(func(x result) float64 { return x.QPS }, 0),
			col(func(x result) float64 { return float64(x.Lost) }, 0),
			cpu(col(func(x result) float64 { return x.CPUPer100k }, 3)))
	}
	b.WriteString("\nDatagrams per query: the query and its answer, each counted once (the proxy receives and sends each).\n")
	b.WriteString("Each query is a session of its own: tierlb `udp.responses: 1`, nginx `proxy_responses 1`; both run one loop/worker per core with a SO_REUSEPORT socket each. ")
	b.WriteString("The backend is `whoami --dns` for queries and `iperf3 -s` for iperf3, whose control connection goes through a TCP service on the same port.\n\n")
	fmt.Fprintf(&b, "Versions: ")
	keys := make([]string, 0, len(r.Versions))
	for k := range r.Versions {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s `%s`", k, r.Versions[k])
	}
	b.WriteString(".\n\nLoad average (1 min) at each run's start: ")
	for i, x := range r.Results {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %.1f", x.Target, x.Load1)
	}
	b.WriteString(".\n")
	return b.String()
}
