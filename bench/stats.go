package main

import (
	"slices"
	"time"
)

// runRecord is one scenario on one target in one round.
type runRecord struct {
	Round    int       `json:"round"`
	Scenario string    `json:"scenario"`
	Target   string    `json:"target"`
	Start    time.Time `json:"start"`
	Seconds  float64   `json:"seconds"`
	// Load1 is the machine's 1-minute load average when the run started:
	// the box is shared, and this says how much.
	Load1 float64 `json:"load1"`
	// OthersCPU is the share (0..1) of the machine's CPU that processes
	// other than the bench and its children used during the run; nil when
	// unknown.
	OthersCPU *float64 `json:"others_cpu_share,omitempty"`
	outcome
	Err string `json:"error,omitempty"`
}

// spread summarises one metric over the rounds.
type spread struct {
	Median, Min, Max float64
	N                int
}

// summarize returns the median, min and max of vs; N is 0 for no values.
func summarize(vs []float64) spread {
	if len(vs) == 0 {
		return spread{}
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return spread{Median: med, Min: s[0], Max: s[len(s)-1], N: len(s)}
}

// metricValues collects one metric of one scenario on one target from every
// successful round.
func metricValues(runs []runRecord, scenario, target, metric string) []float64 {
	var out []float64
	for _, r := range runs {
		if r.Scenario != scenario || r.Target != target || r.Err != "" {
			continue
		}
		if v, ok := r.Metrics[metric]; ok {
			out = append(out, v)
		}
	}
	return out
}

func stat(runs []runRecord, scenario, target, metric string) spread {
	return summarize(metricValues(runs, scenario, target, metric))
}

// advantage is how much better a is than ref on a row: above 1 means a is
// better whichever direction the row counts. Zero when undefined.
func advantage(a, ref float64, higherIsBetter bool) float64 {
	switch {
	case higherIsBetter && ref > 0:
		return a / ref
	case !higherIsBetter && a > 0:
		return ref / a
	}
	return 0
}
