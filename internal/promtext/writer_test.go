package promtext

import (
	"bytes"
	"math"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// registryText is what the registry's text encoder writes for reg.
func registryText(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// FuzzFamilyWriter: any label value, help text and value is written as the
// registry's text encoder writes it.
func FuzzFamilyWriter(f *testing.F) {
	f.Add("web-1", "help", 1.0)
	f.Add(`a"b\c`+"\nd", "x\\y\nz", 1234567.0)
	f.Add("bad\xff", "", math.Inf(-1))
	f.Add("", "ü", math.NaN())
	f.Fuzz(func(t *testing.T, label, help string, v float64) {
		reg := prometheus.NewRegistry()
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "fuzz_metric", Help: help}, []string{"backend", "service"})
		if err := reg.Register(g); err != nil {
			t.Skip() // a help text the registry itself refuses
		}
		var want string
		if gv, err := g.GetMetricWithLabelValues(label, "svc"); err == nil {
			gv.Set(v)
			want = registryText(t, reg)
		}
		var got bytes.Buffer
		fw := NewFamilyWriter(&got)
		fw.Family("fuzz_metric", help, dto.MetricType_GAUGE)
		fw.Sample(v, "backend", label, "service", "svc")
		if err := fw.Flush(); err != nil {
			t.Fatal(err)
		}
		if got.String() != want {
			t.Fatalf("label %q help %q value %v:\ngot  %q\nwant %q", label, help, v, got.String(), want)
		}
		if want == "" && fw.Err() == nil {
			t.Fatalf("label %q left out without an error", label)
		}
	})
}

// FuzzHistogram: a histogram series, with any label value, bounds and
// observations, is written as the registry writes a const histogram of the
// same counts: buckets with le last, +Inf, _sum, _count.
func FuzzHistogram(f *testing.F) {
	f.Add("web", 0.5, 2.0, uint64(1), uint64(2), uint64(0), 0.75)
	f.Add(`q"\`+"\n", 1e-4, 1e21, uint64(0), uint64(0), uint64(0), 0.0)
	f.Add("bad\xff", -1.0, 1.0, uint64(3), uint64(0), uint64(7), math.Inf(1))
	f.Add("", 0.001, 3600.0, uint64(1<<60), uint64(5), uint64(1), 1234567.891)
	f.Fuzz(func(t *testing.T, label string, b0, b1 float64, n0, n1, nInf uint64, sum float64) {
		if math.IsNaN(b0) || math.IsNaN(b1) || math.IsInf(b0, 0) || math.IsInf(b1, 0) || b0 >= b1 {
			t.Skip() // the registry takes finite, increasing bounds
		}
		bounds := []float64{b0, b1}
		cumulative := []uint64{n0, n0 + n1}
		count := n0 + n1 + nInf
		reg := prometheus.NewRegistry()
		d := prometheus.NewDesc("fuzz_seconds", "a histogram", []string{"service"}, nil)
		var want string
		if h, err := prometheus.NewConstHistogram(d, count, sum, map[float64]uint64{b0: cumulative[0], b1: cumulative[1]}, label); err == nil {
			reg.MustRegister(constCollector{d, h})
			want = registryText(t, reg)
		}
		var got bytes.Buffer
		fw := NewFamilyWriter(&got)
		fw.Family("fuzz_seconds", "a histogram", dto.MetricType_HISTOGRAM)
		fw.Histogram(bounds, cumulative, count, sum, "service", label)
		if err := fw.Flush(); err != nil {
			t.Fatal(err)
		}
		if got.String() != want {
			t.Fatalf("label %q bounds %v counts %v sum %v:\ngot  %q\nwant %q", label, bounds, cumulative, sum, got.String(), want)
		}
		if want == "" && fw.Err() == nil {
			t.Fatalf("label %q left out without an error", label)
		}
	})
}

// TestHistogramWithoutLabels: le alone goes in the braces.
func TestHistogramWithoutLabels(t *testing.T) {
	reg := prometheus.NewRegistry()
	d := prometheus.NewDesc("plain_seconds", "h", nil, nil)
	reg.MustRegister(constCollector{d, prometheus.MustNewConstHistogram(d, 3, 1.5, map[float64]uint64{1: 2})})
	var got bytes.Buffer
	fw := NewFamilyWriter(&got)
	fw.Family("plain_seconds", "h", dto.MetricType_HISTOGRAM)
	fw.Histogram([]float64{1}, []uint64{2}, 3, 1.5)
	if err := fw.Flush(); err != nil {
		t.Fatal(err)
	}
	if want := registryText(t, reg); got.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", got.String(), want)
	}
}

// constCollector collects one const metric.
type constCollector struct {
	d *prometheus.Desc
	m prometheus.Metric
}

func (c constCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.d }
func (c constCollector) Collect(ch chan<- prometheus.Metric) { ch <- c.m }
