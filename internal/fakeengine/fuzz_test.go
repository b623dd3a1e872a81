package fakeengine

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"
)

func FuzzParseFilters(f *testing.F) {
	for _, s := range []string{"", `{"label":{"a=b":true}}`, `{"label":["a"]}`, `{"type":{"container":true,"network":false}}`, `[1]`, `{"x":{"y":1}}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		args, err := parseFilters(s)
		if err != nil {
			if args != nil {
				t.Fatalf("error %v with args %v", err, args)
			}
			return
		}
		ef, err := newEventFilter(args)
		if err != nil {
			return
		}
		ef.match(events.Message{Type: events.ContainerEventType, Action: "start", Actor: events.Actor{ID: "x", Attributes: map[string]string{"a": "b"}}})
	})
}

func FuzzParseTimestamp(f *testing.F) {
	for _, s := range []string{"", "1700000000", "1700000000.000000001", "1.5", "-1", "1.", "1.1234567890", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ts, err := parseTimestamp(s)
		if err != nil {
			if !strings.Contains(err.Error(), "timestamp") {
				t.Fatalf("error %q does not name what was wrong", err)
			}
			return
		}
		if s != "" && ts.Before(time.Unix(0, 0)) {
			t.Fatalf("%q parsed to %v, before the epoch", s, ts)
		}
	})
}

func TestParseTimestamp(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"", time.Time{}, true},
		{"1700000000", time.Unix(1700000000, 0), true},
		{"1700000000.000000123", time.Unix(1700000000, 123), true},
		{"1700000000.5", time.Unix(1700000000, 5e8), true},
		{"1700000000.", time.Time{}, false},
		{"-3", time.Time{}, false},
		{"soon", time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseTimestamp(tt.in)
			if (err == nil) != tt.ok || !got.Equal(tt.want) {
				t.Fatalf("parseTimestamp(%q) = %v, %v", tt.in, got, err)
			}
		})
	}
}

func TestActionMatches(t *testing.T) {
	tests := []struct {
		filter, action string
		want           bool
	}{
		{"start", "start", true},
		{"start", "restart", false},
		{"health_status", "health_status: healthy", true},
		{"health_status: healthy", "health_status: healthy", true},
		{"health_status", "health_statusx", false},
		{"kill", "kill: 15", false},
	}
	for _, tt := range tests {
		if got := actionMatches(tt.filter, tt.action); got != tt.want {
			t.Errorf("actionMatches(%q, %q) = %t", tt.filter, tt.action, got)
		}
	}
}

// FuzzSwarmFilters feeds any filters to the Swarm lists: each answers 200
// with a JSON array, 400 naming what was wrong, or 404 for a service or
// node that does not exist, as the daemon does.
func FuzzSwarmFilters(f *testing.F) {
	for _, s := range []string{"", `{"service":{"web":true},"desired-state":{"running":true}}`, `{"desired-state":["nope"]}`,
		`{"id":{"a":true}}`, `{"mode":{"global":true}}`, `{"role":{"manager":true}}`, `{"node":{"node-2":true}}`, `{"name":["web.1"]}`, `{"label":{"tier=front":true}}`} {
		f.Add("/tasks", s)
		f.Add("/services", s)
		f.Add("/nodes", s)
	}
	e := New(Options{Swarm: true, Nodes: 3})
	if _, _, err := e.CreateService("web", 3, map[string]string{"tier": "front"}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, path, filters string) {
		if path != "/tasks" && path != "/services" && path != "/nodes" {
			return
		}
		rec := httptest.NewRecorder()
		e.serveHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1.41"+path+"?filters="+url.QueryEscape(filters), nil))
		var body any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("%s %q: %d with a body that is not JSON: %q", path, filters, rec.Code, rec.Body)
		}
		switch rec.Code {
		case http.StatusOK:
			if _, ok := body.([]any); !ok {
				t.Fatalf("%s %q: 200 with %T, want an array", path, filters, body)
			}
		case http.StatusBadRequest, http.StatusNotFound:
			if m, _ := body.(map[string]any)["message"].(string); m == "" {
				t.Fatalf("%s %q: %d without a message", path, filters, rec.Code)
			}
		default:
			t.Fatalf("%s %q: status %d", path, filters, rec.Code)
		}
	})
}

func TestKnownTaskState(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"running", true}, {"shutdown", true}, {"accepted", true}, {"RUNNING", true}, {"remove", true},
		{"", false}, {"asleep", false}, {"run", false},
	}
	for _, tt := range tests {
		if got := knownTaskState(tt.in); got != tt.want {
			t.Errorf("knownTaskState(%q) = %t, want %t", tt.in, got, tt.want)
		}
	}
}

func TestPrefixOf(t *testing.T) {
	a := filterArgs{"id": {"ab", "cd"}}
	tests := []struct {
		key, got string
		want     bool
	}{
		{"id", "abc", true}, {"id", "cde", true}, {"id", "xab", false}, {"id", "a", false}, {"name", "anything", true},
	}
	for _, tt := range tests {
		if got := a.prefixOf(tt.key, tt.got); got != tt.want {
			t.Errorf("prefixOf(%q, %q) = %t, want %t", tt.key, tt.got, got, tt.want)
		}
	}
}
