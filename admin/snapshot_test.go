package admin

import (
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/tierlb/tierlb/backends"
	"github.com/tierlb/tierlb/backends/docker"
)

// TestServicesJSONShape pins the documented field names and values: scripts
// and the CLI depend on them.
func TestServicesJSONShape(t *testing.T) {
	set := backends.NewSet("app", backends.RoundRobin, backends.SetOptions{})
	t.Cleanup(set.Close)
	set.Update([]backends.Spec{
		{ID: "web-1", Address: "172.20.0.3:8080", Network: "tier1", Container: "0123abcd", Weight: 2, Priority: 1},
		{ID: "web-2", Address: "172.20.0.4:8080", Network: "tier1", Container: "4567ef01", Weight: 1},
	})
	w1 := set.Backend("web-1")
	for range 3 {
		w1.ConnOpened()
	}
	w1.ConnClosed(10, 200)
	w1.CountConnectError(backends.DialTimeout)
	w1.RecordCheck(true, "tcp connect ok")
	set.Backend("web-2").SetAdminState(backends.StateMaint)

	f := startServerWith(t, Options{}, ServiceList{{Name: "app", Listen: "0.0.0.0:8080", Set: set}})
	code, body, _ := f.do(t, "GET", "/api/v1/services", nil)
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	var raw []map[string]any
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		t.Fatalf("decode: %v\n%s", err, body)
	}
	if len(raw) != 1 {
		t.Fatalf("%d services, want 1", len(raw))
	}
	if got := slices.Sorted(maps.Keys(raw[0])); !slices.Equal(got, []string{"active_connections", "backends", "balance", "listen", "name", "protocol", "rates", "states"}) {
		t.Errorf("service keys %v", got)
	}
	if raw[0]["protocol"] != "tcp" {
		t.Errorf("protocol %v, want tcp when the service does not say", raw[0]["protocol"])
	}
	bs := raw[0]["backends"].([]any)
	wantKeys := []string{"active_connections", "address", "bytes_to_backend", "bytes_to_client", "connect_errors",
		"container", "id", "last_check", "network", "priority", "rates", "reason", "state", "total_connections", "weight"}
	if got := slices.Sorted(maps.Keys(bs[0].(map[string]any))); !slices.Equal(got, wantKeys) {
		t.Errorf("backend keys %v, want %v", got, wantKeys)
	}

	var svcs []ServiceStatus
	if err := json.Unmarshal([]byte(body), &svcs); err != nil {
		t.Fatal(err)
	}
	got := svcs[0]
	if got.Name != "app" || got.Listen != "0.0.0.0:8080" || got.Balance != "roundrobin" || len(got.Backends) != 2 {
		t.Fatalf("service %+v", got)
	}
	if want := map[string]int{"up": 1, "down": 0, "draining": 0, "maint": 1}; !maps.Equal(got.States, want) || got.ActiveConnections != 2 {
		t.Errorf("states %v active %d, want %v and 2", got.States, got.ActiveConnections, want)
	}
	if got.Rates != nil {
		t.Errorf("rates %+v before any history sample, want null", got.Rates)
	}
	b := got.Backends[0]
	lc := b.LastCheck
	if lc == nil || lc.Result != "ok" || lc.Reason != "tcp connect ok" || time.Since(lc.At) > time.Minute {
		t.Errorf("last_check %+v", lc)
	}
	b.LastCheck = nil
	want := BackendStatus{
		ID: "web-1", Address: "172.20.0.3:8080", Network: "tier1", Container: "0123abcd",
		State: "up", Reason: "not checked yet", Weight: 2, Priority: 1,
		ActiveConnections: 2, TotalConnections: 3, BytesToBackend: 10, BytesToClient: 200,
		ConnectErrors: map[string]uint64{"timeout": 1, "refused": 0, "unreachable": 0, "other": 0},
	}
	if !equalJSON(t, b, want) {
		t.Errorf("backend\n got %+v\nwant %+v", b, want)
	}
	if m := got.Backends[1]; m.State != "maint" || m.Reason != "set to maint by an operator" || m.LastCheck != nil {
		t.Errorf("web-2 %+v", m)
	}
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(ja) == string(jb)
}

// TestExplanationCoversDocker keeps every field of the Docker provider's
// explanation in Explanation, with the same type, so cmd/ copies all of
// them; Explanation adds the service's server names.
func TestExplanationCoversDocker(t *testing.T) {
	d, a := reflect.TypeFor[docker.Explanation](), reflect.TypeFor[Explanation]()
	for i := range d.NumField() {
		df := d.Field(i)
		af, ok := a.FieldByName(df.Name)
		if !ok || af.Type != df.Type {
			t.Errorf("docker.Explanation.%s (%s) has no twin in Explanation", df.Name, df.Type)
		}
	}
	if a.NumField() != d.NumField()+1 {
		t.Errorf("Explanation has %d fields, want docker.Explanation's %d and SNI", a.NumField(), d.NumField())
	}
}
