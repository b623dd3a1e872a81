package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tierlb/tierlb/admin"
	"github.com/tierlb/tierlb/backends"
	"github.com/tierlb/tierlb/internal/portcap"
	"github.com/tierlb/tierlb/internal/testkit"
)

// The gauge has one series per TCP backend, with the figure for its kind
// of address (the lower one for an ID listed at two); UDP services have
// none. The text scrape writes what the registry does.
func TestPortCapacityGauge(t *testing.T) {
	s := portcap.Settings{PortLow: 32768, PortHigh: 60999, TWReuse: 2, Timestamps: 1, ReuseDelay: time.Second}
	newSet := func(name string, specs ...backends.Spec) *backends.Set {
		set := backends.NewSet(name, backends.RoundRobin, backends.SetOptions{})
		t.Cleanup(set.Close)
		set.Update(specs)
		return set
	}
	services := admin.ServiceList{
		{Name: "db", Set: newSet("db",
			backends.Spec{ID: "db-1", Address: "10.0.0.2:5432", Weight: 1},
			backends.Spec{ID: "local", Address: "127.0.0.1:5432", Weight: 1},
			backends.Spec{ID: "both", Address: "127.0.0.2:5432", Weight: 1},
			backends.Spec{ID: "both", Address: "10.0.0.9:5432", Weight: 1})},
		{Name: "dns", Protocol: "udp", Set: newSet("dns", backends.Spec{ID: "dns-1", Address: "10.0.0.3:53", Weight: 1})},
		{Name: "empty"},
	}
	c := newPortCapacity(s, services)
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	remote := strconv.FormatFloat(28232.0/60, 'g', -1, 64)
	want := fmt.Sprintf(`
# HELP tierlb_backend_local_port_capacity New connections per second the backend's address can take before tierlb's network namespace runs out of local ports, when clients close first (ip_local_port_range, tcp_tw_reuse).
# TYPE tierlb_backend_local_port_capacity gauge
tierlb_backend_local_port_capacity{backend="both",service="db"} %s
tierlb_backend_local_port_capacity{backend="db-1",service="db"} %s
tierlb_backend_local_port_capacity{backend="local",service="db"} 28232
`, remote, remote)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "tierlb_backend_local_port_capacity"); err != nil {
		t.Error(err)
	}
	if got := testkit.Streamed(t, c.Families(), c.Snapshot); got != strings.TrimPrefix(want, "\n") {
		t.Errorf("streamed:\n%s\nwant\n%s", got, want)
	}
}

// tierlb says at start what its namespace allows, and exports it.
func TestLocalPortCapacityAtStart(t *testing.T) {
	if _, err := os.Stat(procNetIPv4 + "/ip_local_port_range"); err != nil {
		t.Skipf("no %s: %v", procNetIPv4, err)
	}
	s, err := portcap.Read(os.DirFS(procNetIPv4))
	if err != nil {
		t.Fatal(err)
	}
	b := startBackend(t, "b1")
	file := writeFile(t, "tierlb.yaml", fmt.Sprintf(`admin: {listen: '127.0.0.1:0'}
services:
  - name: app
    listen: 127.0.0.1:0
    health: {type: none}
    backends: {static: ['%s']}
`, b.addr()))
	p := startBinary(t, "run", "--config", file)
	got := p.WaitLog(t, `msg="local port capacity: [^"]*" per_backend_per_second=(\d+) `)
	if want := strconv.Itoa(int(s.PerSecond(false))); got != want {
		t.Errorf("start line says %s connections/s per backend, want %s", got, want)
	}
	admin := p.WaitLog(t, `msg="admin listening" addr=(\S+)`)
	v := metric(t, admin, `tierlb_backend_local_port_capacity{backend="`+b.addr()+`",service="app"}`)
	if want := strconv.FormatFloat(s.PerSecond(true), 'g', -1, 64); v != want {
		t.Errorf("gauge for the loopback backend = %s, want %s", v, want)
	}
}
