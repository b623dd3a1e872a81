package main

import (
	"strings"
	"testing"
)

func TestParseIperfUDP(t *testing.T) {
	tests := []struct {
		name, in string
		want     iperfResult
		err      string
	}{
		{"udp run", `{"end": {"sum": {"bytes": 48199200, "seconds": 2.05, "lost_percent": 19.39, "packets": 34428},
			"sum_received": {"bytes": 38850000, "seconds": 2.0}}}`, iperfResult{MBps: 19.425, LossPct: 19.39}, ""},
		{"error", `{"error": "unable to connect to server: Connection refused"}`, iperfResult{}, "Connection refused"},
		{"no sums", `{"end": {}}`, iperfResult{}, "no end.sum"},
		{"zero seconds", `{"end": {"sum": {}, "sum_received": {"bytes": 1, "seconds": 0}}}`, iperfResult{}, "no end.sum"},
		{"not json", `iperf3: error`, iperfResult{}, "iperf3 json"},
		{"negative bytes", `{"end": {"sum": {}, "sum_received": {"bytes": -1, "seconds": 1}}}`, iperfResult{}, "no end.sum"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseIperfUDP([]byte(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func FuzzParseIperfUDP(f *testing.F) {
	f.Add([]byte(`{"end": {"sum": {"lost_percent": 1}, "sum_received": {"bytes": 10, "seconds": 1}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseIperfUDP(b)
		if err == nil && !(r.MBps >= 0) {
			t.Fatalf("negative rate %+v", r)
		}
	})
}

func TestMarkdownMedians(t *testing.T) {
	r := report{Rounds: 3, Rate: "100M", Size: 1400, Clients: 32, Results: []result{
		{Target: "tierlb", QPS: 3, CPUPer100k: 2}, {Target: "tierlb", QPS: 1, CPUPer100k: 1}, {Target: "tierlb", QPS: 2, CPUPer100k: 3},
		{Target: "direct", QPS: 10}, {Target: "nginx", Error: "failed"},
	}}
	md := r.markdown()
	for _, want := range []string{"| tierlb | 0.0 (0.0–0.0) | 0.00 (0.00–0.00) | 0.00 (0.00–0.00) | 2 (1–3) | 0 (0–0) | 2.000 (1.000–3.000) |", "| nginx | failed", "| direct | 0.0 | 0.00 | – | 10 |"} {
		if !strings.Contains(md, want) {
			t.Errorf("no %q in:\n%s", want, md)
		}
	}
}
