package fakeengine

import (
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
