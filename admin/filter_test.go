package admin

import (
	"encoding/json"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/tierlb/tierlb/backends"
)

func TestParseFilter(t *testing.T) {
	api := []string{paramService, paramState, paramBackend}
	page := append(api, paramPage)
	tests := []struct {
		name, query string
		allowed     []string
		want        filter
		err         string
	}{
		{name: "none", query: "", allowed: api},
		{name: "service", query: "service=app", allowed: api, want: filter{service: "app"}},
		{name: "state", query: "state=down", allowed: api, want: filter{states: []backends.State{backends.StateDown}}},
		{name: "states in a list, sorted, once each", query: "state=maint,down,maint&state=draining", allowed: api,
			want: filter{states: []backends.State{backends.StateDown, backends.StateDraining, backends.StateMaint}}},
		{name: "empty state", query: "state=&state=,", allowed: api},
		{name: "backend lower-cased", query: "backend=Web-1", allowed: api, want: filter{backend: "web-1"}},
		{name: "page", query: "page=3&service=app", allowed: page, want: filter{service: "app", page: 3}},
		{name: "all", query: "service=a&state=up&backend=10.0&page=1", allowed: page,
			want: filter{service: "a", states: []backends.State{backends.StateUp}, backend: "10.0", page: 1}},

		{name: "unknown state", query: "state=sick", allowed: api, err: `query parameter state: unknown state "sick" (want up, down, draining or maint`},
		{name: "typo", query: "sate=down", allowed: api, err: `unknown query parameter "sate" (want service, state, backend)`},
		{name: "page on the API", query: "page=2", allowed: api, err: `unknown query parameter "page"`},
		{name: "bad page", query: "page=0", allowed: page, err: `query parameter page: "0" is not a page number`},
		{name: "page not a number", query: "page=x", allowed: page, err: "is not a page number"},
		{name: "service twice", query: "service=a&service=b", allowed: api, err: "query parameter service given 2 times, want once"},
		{name: "too long", query: "backend=" + strings.Repeat("x", maxFilterLen+1), allowed: api, err: "query parameter backend: 257 bytes, want at most 256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseFilter(q, tt.allowed...)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("parseFilter(%q) = %+v, %v; want an error with %q", tt.query, got, err, tt.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("parseFilter(%q) = %+v, %v; want %+v", tt.query, got, err, tt.want)
			}
		})
	}
}

func TestFilterSelects(t *testing.T) {
	tests := []struct {
		name, query, id, address string
		state                    backends.State
		want                     bool
	}{
		{"everything", "", "web-1", "10.0.0.1:80", backends.StateDown, true},
		{"state", "state=down", "web-1", "10.0.0.1:80", backends.StateDown, true},
		{"other state", "state=up,maint", "web-1", "10.0.0.1:80", backends.StateDown, false},
		{"id", "backend=EB-", "Web-1", "10.0.0.1:80", backends.StateUp, true},
		{"address", "backend=0.1:8", "web-1", "10.0.0.1:80", backends.StateUp, true},
		{"neither", "backend=web-2", "web-1", "10.0.0.1:80", backends.StateUp, false},
		{"both must hold", "backend=web&state=up", "web-1", "10.0.0.1:80", backends.StateDown, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, _ := url.ParseQuery(tt.query)
			f, err := parseFilter(q, paramState, paramBackend)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.selectsBackend(tt.id, tt.address, tt.state); got != tt.want {
				t.Fatalf("%q selects %s %s %s: %v, want %v", tt.query, tt.id, tt.address, tt.state, got, tt.want)
			}
		})
	}
}

// FuzzParseFilter: any query either fails with an error or gives a filter
// that its own encoding gives back, and matching never panics.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"", "service=app", "state=down,maint&state=up", "backend=Web%00", "page=2&state=",
		"state=,,", "page=-1", "page=99999999999999999999", "x=1", "backend=%ff%fe"} {
		f.Add(s)
	}
	all := []string{paramService, paramState, paramBackend, paramPage}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		got, err := parseFilter(q, all...)
		if err != nil {
			return
		}
		again, err := parseFilter(got.query(), all...)
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("%q gives %+v, whose query %q gives %+v, %v", raw, got, got.query().Encode(), again, err)
		}
		got.selectsBackend("Web-1", "10.0.0.1:80", backends.StateUp)
		got.selectsService("app")
	})
}

// TestServicesAPIFilters: the filters of GET /api/v1/services, and their
// errors.
func TestServicesAPIFilters(t *testing.T) {
	app := newTestSet(t, "app", "127.0.0.1:8001", "127.0.0.1:8002", "10.0.0.3:80")
	app.Backend("127.0.0.1:8002").SetHealth(false, "refused")
	app.Backend("10.0.0.3:80").SetAdminState(backends.StateMaint)
	db := newTestSet(t, "db", "127.0.0.1:5432")
	f := startServerWith(t, Options{}, ServiceList{{Name: "app", Set: app}, {Name: "db", Set: db}})

	type want map[string][]string // service -> backend ids
	tests := []struct {
		name, query string
		code        int
		want        want
		err         string
	}{
		{name: "all", query: "", code: 200, want: want{"app": {"10.0.0.3:80", "127.0.0.1:8001", "127.0.0.1:8002"}, "db": {"127.0.0.1:5432"}}},
		{name: "service", query: "?service=db", code: 200, want: want{"db": {"127.0.0.1:5432"}}},
		{name: "state", query: "?state=down", code: 200, want: want{"app": {"127.0.0.1:8002"}, "db": {}}},
		{name: "not up", query: "?state=down,maint", code: 200, want: want{"app": {"10.0.0.3:80", "127.0.0.1:8002"}, "db": {}}},
		{name: "backend", query: "?backend=127.0.0.1", code: 200, want: want{"app": {"127.0.0.1:8001", "127.0.0.1:8002"}, "db": {"127.0.0.1:5432"}}},
		{name: "all three", query: "?service=app&state=up&backend=8001", code: 200, want: want{"app": {"127.0.0.1:8001"}}},
		{name: "unknown service", query: "?service=web", code: 404, err: `service "web" not found`},
		{name: "bad state", query: "?state=sick", code: 400, err: `query parameter state: unknown state "sick"`},
		{name: "unknown parameter", query: "?page=2", code: 400, err: `unknown query parameter "page" (want service, state, backend)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, _ := f.do(t, "GET", "/api/v1/services"+tt.query, nil)
			if code != tt.code {
				t.Fatalf("status %d, want %d: %s", code, tt.code, body)
			}
			if tt.err != "" {
				var e apiError
				if err := json.Unmarshal([]byte(body), &e); err != nil || !strings.Contains(e.Error, tt.err) {
					t.Fatalf("error %q, want %q", body, tt.err)
				}
				return
			}
			var list []ServiceStatus
			if err := json.Unmarshal([]byte(body), &list); err != nil {
				t.Fatal(err)
			}
			// Streamed a service at a time, the body is byte for byte what
			// encoding the whole list at once writes.
			whole, err := json.MarshalIndent(list, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if string(whole)+"\n" != body {
				t.Fatalf("streamed body differs from the whole list's JSON:\n%s\nwant\n%s", body, whole)
			}
			got := want{}
			for _, s := range list {
				got[s.Name] = []string{}
				for _, b := range s.Backends {
					got[s.Name] = append(got[s.Name], b.ID)
				}
				// The counts are the service's, whatever the filter.
				if s.Name == "app" && (s.States["up"] != 1 || s.States["down"] != 1 || s.States["maint"] != 1 || s.States["draining"] != 0) {
					t.Errorf("app states %v, want 1 up, 1 down, 1 maint", s.States)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}
