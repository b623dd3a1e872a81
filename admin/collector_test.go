package admin

import (
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tierlb/tierlb/backends"
)

// newTestSet makes a service set with static backends named by their address.
func newTestSet(t *testing.T, name string, addrs ...string) *backends.Set {
	t.Helper()
	set := backends.NewSet(name, backends.RoundRobin, backends.SetOptions{})
	t.Cleanup(set.Close)
	specs := make([]backends.Spec, 0, len(addrs))
	for _, a := range addrs {
		specs = append(specs, backends.Spec{ID: a, Address: a, Weight: 1})
	}
	set.Update(specs)
	return set
}

const backendMetricsHelp = `
# HELP tierlb_backend_bytes_total Bytes moved through the backend's connections, by direction (to_backend, to_client).
# TYPE tierlb_backend_bytes_total counter
# HELP tierlb_backend_connect_errors_total Failed dials to the backend, by reason (timeout, refused, unreachable, other).
# TYPE tierlb_backend_connect_errors_total counter
# HELP tierlb_backend_connections_active Connections open to the backend now.
# TYPE tierlb_backend_connections_active gauge
# HELP tierlb_backend_connections_total Connections opened to the backend.
# TYPE tierlb_backend_connections_total counter
# HELP tierlb_backend_up Whether the backend takes new connections: 1 up, 0 down, draining or maint.
# TYPE tierlb_backend_up gauge
`

// series renders the expected samples of one backend.
func series(svc, id string, total, active, refused, toBackend, toClient int, up int) string {
	r := strings.NewReplacer("SVC", svc, "ID", id)
	return r.Replace(`
tierlb_backend_bytes_total{backend="ID",direction="to_backend",service="SVC"} `) + itoa(toBackend) + r.Replace(`
tierlb_backend_bytes_total{backend="ID",direction="to_client",service="SVC"} `) + itoa(toClient) + r.Replace(`
tierlb_backend_connect_errors_total{backend="ID",reason="other",service="SVC"} 0
tierlb_backend_connect_errors_total{backend="ID",reason="refused",service="SVC"} `) + itoa(refused) + r.Replace(`
tierlb_backend_connect_errors_total{backend="ID",reason="timeout",service="SVC"} 0
tierlb_backend_connect_errors_total{backend="ID",reason="unreachable",service="SVC"} 0
tierlb_backend_connections_active{backend="ID",service="SVC"} `) + itoa(active) + r.Replace(`
tierlb_backend_connections_total{backend="ID",service="SVC"} `) + itoa(total) + r.Replace(`
tierlb_backend_up{backend="ID",service="SVC"} `) + itoa(up) + "\n"
}

func TestCollectorCountsAndLifecycle(t *testing.T) {
	set := newTestSet(t, "app", "127.0.0.1:8001", "127.0.0.1:8002")
	c := NewCollector(ServiceList{{Name: "app", Listen: "127.0.0.1:9000", Set: set}, {Name: "empty"}})

	// Every series exists at zero before the first connection.
	want := backendMetricsHelp + series("app", "127.0.0.1:8001", 0, 0, 0, 0, 0, 1) +
		series("app", "127.0.0.1:8002", 0, 0, 0, 0, 0, 1)
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatalf("fresh set: %v", err)
	}

	b1, b2 := set.Backend("127.0.0.1:8001"), set.Backend("127.0.0.1:8002")
	const n = 7
	for range n {
		b1.ConnOpened()
	}
	for range n - 2 {
		b1.ConnClosed(100, 2000)
	}
	b1.AddBytes(5, 0) // still-open connection reporting progress
	b2.CountConnectError(backends.DialRefused)
	b2.SetHealth(false, "connection refused")

	want = backendMetricsHelp + series("app", "127.0.0.1:8001", n, 2, 0, 5*100+5, 5*2000, 1) +
		series("app", "127.0.0.1:8002", 0, 0, 1, 0, 0, 0)
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatalf("after traffic: %v", err)
	}

	// A removed backend's series vanish with it.
	set.Update([]backends.Spec{{ID: "127.0.0.1:8001", Address: "127.0.0.1:8001", Weight: 1}})
	want = backendMetricsHelp + series("app", "127.0.0.1:8001", n, 2, 0, 5*100+5, 5*2000, 1)
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatalf("after removal: %v", err)
	}
}

func TestCollectorUpFollowsState(t *testing.T) {
	tests := []struct {
		name  string
		apply func(b *backends.Backend)
		up    int
	}{
		{"unchecked", func(*backends.Backend) {}, 1},
		{"healthy", func(b *backends.Backend) { b.SetHealth(true, "tcp ok") }, 1},
		{"down", func(b *backends.Backend) { b.SetHealth(false, "timeout") }, 0},
		{"draining", func(b *backends.Backend) { b.SetAdminState(backends.StateDraining) }, 0},
		{"maint", func(b *backends.Backend) { b.SetAdminState(backends.StateMaint) }, 0},
		{"ready again", func(b *backends.Backend) {
			b.SetAdminState(backends.StateMaint)
			b.SetAdminState(backends.StateUp)
		}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := newTestSet(t, "app", "127.0.0.1:8001")
			tt.apply(set.Backend("127.0.0.1:8001"))
			c := NewCollector(ServiceList{{Name: "app", Set: set}})
			want := `
# HELP tierlb_backend_up Whether the backend takes new connections: 1 up, 0 down, draining or maint.
# TYPE tierlb_backend_up gauge
tierlb_backend_up{backend="127.0.0.1:8001",service="app"} ` + itoa(tt.up) + "\n"
			if err := testutil.CollectAndCompare(c, strings.NewReader(want), "tierlb_backend_up"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestCollectorSameIDTwice covers a provider listing one container at two
// addresses: one series set, every count summed and up if either is, so the
// registry does not reject the scrape for duplicate label sets; the text
// scrape writes the same.
func TestCollectorSameIDTwice(t *testing.T) {
	set := backends.NewSet("app", backends.RoundRobin, backends.SetOptions{})
	t.Cleanup(set.Close)
	set.Update([]backends.Spec{
		{ID: "web-1", Address: "10.0.0.5:80", Weight: 1},
		{ID: "web-1", Address: "10.0.1.5:80", Weight: 1},
		{ID: "web-0", Address: "10.0.2.5:80", Weight: 1},
	})
	byAddr := map[string]*backends.Backend{}
	for _, b := range set.Backends() {
		byAddr[b.Address()] = b
	}
	first, second := byAddr["10.0.0.5:80"], byAddr["10.0.1.5:80"]
	first.ConnOpened()
	first.AddBytes(5, 7)
	first.CountConnectError(backends.DialRefused)
	second.ConnOpened()
	second.ConnOpened()
	second.AddBytes(1, 1)
	second.CountConnectError(backends.DialTimeout)
	second.SetHealth(false, "refused")
	c := NewCollector(ServiceList{{Name: "app", Set: set}})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	want := `
# HELP tierlb_backend_bytes_total Bytes moved through the backend's connections, by direction (to_backend, to_client).
# TYPE tierlb_backend_bytes_total counter
tierlb_backend_bytes_total{backend="web-0",direction="to_backend",service="app"} 0
tierlb_backend_bytes_total{backend="web-0",direction="to_client",service="app"} 0
tierlb_backend_bytes_total{backend="web-1",direction="to_backend",service="app"} 6
tierlb_backend_bytes_total{backend="web-1",direction="to_client",service="app"} 8
# HELP tierlb_backend_connect_errors_total Failed dials to the backend, by reason (timeout, refused, unreachable, other).
# TYPE tierlb_backend_connect_errors_total counter
tierlb_backend_connect_errors_total{backend="web-0",reason="other",service="app"} 0
tierlb_backend_connect_errors_total{backend="web-0",reason="refused",service="app"} 0
tierlb_backend_connect_errors_total{backend="web-0",reason="timeout",service="app"} 0
tierlb_backend_connect_errors_total{backend="web-0",reason="unreachable",service="app"} 0
tierlb_backend_connect_errors_total{backend="web-1",reason="other",service="app"} 0
tierlb_backend_connect_errors_total{backend="web-1",reason="refused",service="app"} 1
tierlb_backend_connect_errors_total{backend="web-1",reason="timeout",service="app"} 1
tierlb_backend_connect_errors_total{backend="web-1",reason="unreachable",service="app"} 0
# HELP tierlb_backend_connections_active Connections open to the backend now.
# TYPE tierlb_backend_connections_active gauge
tierlb_backend_connections_active{backend="web-0",service="app"} 0
tierlb_backend_connections_active{backend="web-1",service="app"} 3
# HELP tierlb_backend_connections_total Connections opened to the backend.
# TYPE tierlb_backend_connections_total counter
tierlb_backend_connections_total{backend="web-0",service="app"} 0
tierlb_backend_connections_total{backend="web-1",service="app"} 3
# HELP tierlb_backend_up Whether the backend takes new connections: 1 up, 0 down, draining or maint.
# TYPE tierlb_backend_up gauge
tierlb_backend_up{backend="web-0",service="app"} 1
tierlb_backend_up{backend="web-1",service="app"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if got := scrape(t, streamedHandler(nil, c), textAccept, "").Body.String(); got != strings.TrimPrefix(want, "\n") {
		t.Fatalf("streamed:\n%s\nwant\n%s", got, want)
	}
}

func TestCollectorInvalidLabelIsAnErrorNotAPanic(t *testing.T) {
	set := newTestSet(t, "app", "bad\xffname:80")
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(ServiceList{{Name: "app", Set: set}}))
	if _, err := reg.Gather(); err == nil {
		t.Fatal("gather with an invalid UTF-8 label value succeeded; want an error")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
