package listenaddr

import (
	"slices"
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		name        string
		in          string
		host        string
		first, last int
		err         string // substring; "" for success
	}{
		{"single", "0.0.0.0:8080", "0.0.0.0", 8080, 8080, ""},
		{"kernel picks", "127.0.0.1:0", "127.0.0.1", 0, 0, ""},
		{"range", "0.0.0.0:30000-30099", "0.0.0.0", 30000, 30099, ""},
		{"ipv6 range", "[::]:1-2", "::", 1, 2, ""},
		{"empty host", ":5000-5999", "", 5000, 5999, ""},
		{"largest", ":1-1000", "", 1, 1000, ""},
		{"too many", ":1-1001", "", 0, 0, "1001 ports; at most 1000"},
		{"reversed", ":10-9", "", 0, 0, "first port below the last"},
		{"one-port range", ":10-10", "", 0, 0, "first port below the last"},
		{"from zero", ":0-10", "", 0, 0, "starts at 0"},
		{"past 65535", ":65000-65536", "", 0, 0, "out of range"},
		{"no last", ":10-", "", 0, 0, "not a number"},
		{"signed", ":+10", "", 0, 0, "not a number"},
		{"two dashes", ":1-2-3", "", 0, 0, "not a number"},
		{"no port", "1.2.3.4", "", 0, 0, "missing port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host, first, last, err := Split(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Split(%q) error %v, want one saying %q", tt.in, err, tt.err)
				}
				return
			}
			if err != nil || host != tt.host || first != tt.first || last != tt.last {
				t.Fatalf("Split(%q) = %q, %d, %d, %v; want %q, %d, %d", tt.in, host, first, last, err, tt.host, tt.first, tt.last)
			}
		})
	}
}

func TestExpand(t *testing.T) {
	got, err := Expand("[::1]:30000-30002")
	want := []string{"[::1]:30000", "[::1]:30001", "[::1]:30002"}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("Expand = %v, %v; want %v", got, err, want)
	}
	if _, err := Expand("x:1-0"); err == nil || !strings.Contains(err.Error(), `"x:1-0"`) {
		t.Fatalf("Expand error %v, want one naming the address", err)
	}
}

// FuzzSplit: whatever Split accepts is a well-formed range that Expand
// turns into that many addresses, each a single port Split reads back.
func FuzzSplit(f *testing.F) {
	for _, s := range []string{":80", "0.0.0.0:30000-30099", "[::]:1-1000", ":0-1", ":65535-65535", "a:1-2-3", ":99999-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		host, first, last, err := Split(s)
		if err != nil {
			return
		}
		if first < 0 || last > 65535 || last < first || last-first+1 > MaxPorts {
			t.Fatalf("%q: ports %d-%d", s, first, last)
		}
		addrs, err := Expand(s)
		if err != nil || len(addrs) != last-first+1 {
			t.Fatalf("%q: Expand = %d addresses, %v; want %d", s, len(addrs), err, last-first+1)
		}
		h, p, q, err := Split(addrs[len(addrs)-1])
		if err != nil || h != host || p != last || q != last {
			t.Fatalf("%q: last address %q reads %q %d-%d, %v", s, addrs[len(addrs)-1], h, p, q, err)
		}
	})
}
