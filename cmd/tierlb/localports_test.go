package main

import (
	"fmt"
	"net/http/httptest"
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
)

// The gauge has one series per TCP backend, with the figure for its kind
// of address; UDP services have none.
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
			// One container briefly at two addresses: the lower figure.
			backends.Spec{ID: "db-1", Address: "127.0.0.2:5432", Weight: 1},
			backends.Spec{ID: "local", Address: "127.0.0.1:5432", Weight: 1})},
		{Name: "cache", Set: newSet("cache", backends.Spec{ID: "db-1", Address: "127.0.0.3:6379", Weight: 1})},
		{Name: "dns", Protocol: "udp", Set: newSet("dns", backends.Spec{ID: "dns-1", Address: "10.0.0.3:53", Weight: 1})},
		{Name: "empty"},
	}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(newPortCapacity(s, services)); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`
# HELP tierlb_backend_local_port_capacity New connections per second the backend's address can take before tierlb's network namespace runs out of local ports, when clients close first (ip_local_port_range, tcp_tw_reuse).
# TYPE tierlb_backend_local_port_capacity gauge
tierlb_backend_local_port_capacity{backend="db-1",service="cache"} 28232
tierlb_backend_local_port_capacity{backend="db-1",service="db"} %s
tierlb_backend_local_port_capacity{backend="local",service="db"} 28232
`, strconv.FormatFloat(28232.0/60, 'g', -1, 64))
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "tierlb_backend_local_port_capacity"); err != nil {
		t.Error(err)
	}

	// /metrics streams the family: the same lines.
	srv := admin.New(admin.Options{Gatherer: prometheus.NewRegistry(), Streamers: []admin.Streamer{newPortCapacity(s, services)}})
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Host = "127.0.0.1:9090"
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, req)
	if got := rec.Body.String(); got != strings.TrimPrefix(want, "\n") {
		t.Errorf("streamed /metrics:\n%s\nwant\n%s", got, want)
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
