package promreg

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRegister(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "tierlb_test_total", Help: "h"}
	first, err := Register(reg, prometheus.NewCounter(opts), "test metrics")
	if err != nil {
		t.Fatal(err)
	}
	first.Add(2)
	again, err := Register(reg, prometheus.NewCounter(opts), "test metrics")
	if err != nil || again != first {
		t.Fatalf("second registration = %v, %v; want the first collector", again, err)
	}
	// The same name as another type of collector, or another help text,
	// is a conflict, not a reuse.
	_, err = Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: "tierlb_test_total", Help: "h"}), "test metrics")
	if err == nil || !strings.Contains(err.Error(), "register test metrics") {
		t.Fatalf("conflicting registration: %v, want an error naming test metrics", err)
	}
	_, err = Register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: "tierlb_test_total", Help: "other"}), "test metrics")
	if err == nil {
		t.Fatal("a collector with other help text was accepted")
	}
}
