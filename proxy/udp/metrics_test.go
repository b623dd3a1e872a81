//go:build linux

package udp

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tierlb/tierlb/backends"
	"github.com/tierlb/tierlb/internal/testkit"
)

// TestStreamedMetricsMatchTheRegistry: the text /metrics writes for the
// UDP families without gathering them is byte for byte the registry's,
// with a backend name shared by two services, one listed twice within a
// service (summed), a service draining beside its successor, drops, and
// label values that need escaping.
func TestStreamedMetricsMatchTheRegistry(t *testing.T) {
	set := func(service string, specs ...backends.Spec) *backends.Set {
		s := backends.NewSet(service, backends.RoundRobin, backends.SetOptions{})
		s.Update(specs)
		t.Cleanup(s.Close)
		return s
	}
	dnsOld := set("dns", backends.Spec{ID: "b", Address: "127.0.0.1:53"}, backends.Spec{ID: `q"uote\`, Address: "127.0.0.2:53"})
	dnsNew := set("dns", backends.Spec{ID: "b", Address: "127.0.0.3:53"}, backends.Spec{ID: "b", Address: "127.0.0.4:53"}, backends.Spec{ID: "a-1", Address: "127.0.0.5:53"})
	ntp := set("ntp", backends.Spec{ID: "b", Address: "127.0.0.1:123"}, backends.Spec{ID: "a", Address: "127.0.0.6:123"})

	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range []*Service{{name: "dns", pools: dnsOld}, {name: "dns", pools: dnsNew}, {name: "ntp", pools: ntp}} {
		m.addService(svc)
		for i, b := range svc.pools.Backends() {
			for range i + 1 {
				st := svc.stats.opened(b)
				st.toBackend.Add(uint64(3 * (i + 1)))
				st.toClient.Add(1 << 40)
			}
		}
	}
	m.initService("dns").drop(dropSendError, 2)
	m.initService("ntp").drop(dropMaxSessions, 1)
	m.initService(`q"`)

	want := testkit.Gathered(t, reg)
	if got := testkit.Streamed(t, m.Families(), m.Snapshot); got != want {
		t.Fatalf("streamed exposition differs from the registry's\n--- got\n%s\n--- want\n%s", got, want)
	}
	if !strings.Contains(want, `tierlb_udp_sessions_total{backend="b",service="dns"} 6`) {
		t.Errorf("the backend listed in both dns services is not summed:\n%s", want)
	}
}
