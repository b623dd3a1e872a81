package backends

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
)

func TestParseAddress(t *testing.T) {
	tests := []struct {
		name, in, want string
		reason         string // substring of the error; "" when valid
	}{
		{"ipv4", "10.0.0.5:8080", "10.0.0.5:8080", ""},
		{"ipv4 leading zero port", "10.0.0.5:080", "10.0.0.5:80", ""},
		{"ipv6", "[2001:DB8::1]:443", "[2001:db8::1]:443", ""},
		{"ipv6 loopback", "[::1]:1", "[::1]:1", ""},
		{"ipv6 zone", "[fe80::1%eth0]:80", "[fe80::1%eth0]:80", ""},
		{"ipv4-mapped ipv6", "[::ffff:10.0.0.1]:80", "[::ffff:10.0.0.1]:80", ""},
		{"name", "Web-1.Example.com:65535", "web-1.example.com:65535", ""},
		{"compose name", "myapp_web_1:8080", "myapp_web_1:8080", ""},
		{"fqdn", "db.internal.:5432", "db.internal.:5432", ""},
		{"localhost", "localhost:9000", "localhost:9000", ""},

		{"empty", "", "", "empty"},
		{"no port", "10.0.0.5", "", "missing port"},
		{"name no port", "web", "", "missing port"},
		{"empty port", "10.0.0.5:", "", "missing port number"},
		{"port 0", "10.0.0.5:0", "", "out of range"},
		{"port too big", "10.0.0.5:65536", "", "out of range"},
		{"port huge", "10.0.0.5:99999999999999999999", "", "out of range"},
		{"port name", "10.0.0.5:http", "", "not a number"},
		{"port sign", "10.0.0.5:+80", "", "not a number"},
		{"no host", ":8080", "", "missing host"},
		{"bare ipv6", "::1:80", "", "needs brackets"},
		{"ipv6 no port", "[::1]", "", "missing port"},
		{"ipv6 unclosed", "[::1:80", "", "missing ']'"},
		{"ipv6 junk after bracket", "[::1]x80", "", "want [addr]:port"},
		{"ipv4 in brackets", "[10.0.0.5]:80", "", "not an IPv6 address"},
		{"name in brackets", "[web]:80", "", "not an IPv6 address"},
		{"stray bracket", "web]:80", "", "unbalanced brackets"},
		{"bad ipv4", "10.0.0.256:80", "", "not a valid IPv4"},
		{"short ipv4", "10.0.5:80", "", "not a valid IPv4"},
		{"unspecified", "0.0.0.0:80", "", "unspecified"},
		{"unspecified ipv6", "[::]:80", "", "unspecified"},
		{"multicast", "224.0.0.1:80", "", "multicast"},
		{"space", "10.0.0.5: 80", "", "spaces"},
		{"scheme", "http://web:80", "", "needs brackets"},
		{"bad char", "we$b:80", "", "invalid character"},
		{"empty label", "web..local:80", "", "empty label"},
		{"leading dot", ".web:80", "", "empty label"},
		{"hyphen label", "-web:80", "", "hyphen"},
		{"long label", strings.Repeat("a", 64) + ":80", "", "longer than 63"},
		{"long name", strings.Repeat("a.", 127) + "ab:80", "", "longer than 253"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAddress(tt.in)
			if tt.reason == "" {
				if err != nil || got != tt.want {
					t.Fatalf("ParseAddress(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
				}
				return
			}
			var ae *AddressError
			if !errors.As(err, &ae) || ae.Address != tt.in {
				t.Fatalf("ParseAddress(%q) = %q, %v; want an *AddressError", tt.in, got, err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("ParseAddress(%q) error %q does not say %q", tt.in, err, tt.reason)
			}
		})
	}
}

func TestStaticSpecs(t *testing.T) {
	specs, err := StaticSpecs([]StaticBackend{
		{Address: "10.0.0.5:8080", Weight: 1},
		{Address: "[2001:db8::1]:8080", Weight: 2, Priority: 1},
		{Address: "Backup.local:8080", Weight: 0},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Spec{
		{ID: "10.0.0.5:8080", Address: "10.0.0.5:8080", Weight: 1},
		{ID: "[2001:db8::1]:8080", Address: "[2001:db8::1]:8080", Weight: 2, Priority: 1},
		{ID: "backup.local:8080", Address: "backup.local:8080", Weight: 0},
	}
	if len(specs) != len(want) {
		t.Fatalf("got %d specs, want %d", len(specs), len(want))
	}
	for i := range want {
		if specs[i] != want[i] {
			t.Errorf("spec %d = %+v, want %+v", i, specs[i], want[i])
		}
	}

	// Every mistake is reported at once, each naming its entry.
	_, err = StaticSpecs([]StaticBackend{
		{Address: "10.0.0.5", Weight: 1},
		{Address: "10.0.0.6:80", Weight: -1},
		{Address: "10.0.0.7:80", Weight: MaxWeight + 1, Priority: -2},
		{Address: "10.0.0.6:080", Weight: 1},
		{Address: "10.0.0.8:80", Weight: MaxWeight},
	})
	var ae *AddressError
	for _, check := range []struct {
		what string
		ok   bool
	}{
		{"an *AddressError", errors.As(err, &ae) && ae.Address == "10.0.0.5"},
		{"ErrBadWeight", errors.Is(err, ErrBadWeight)},
		{"ErrBadPriority", errors.Is(err, ErrBadPriority)},
		{"ErrDuplicateBackend", errors.Is(err, ErrDuplicateBackend)},
		{"static backend 0", strings.Contains(err.Error(), "static backend 0:")},
		{"static backend 1's weight", strings.Contains(err.Error(), `static backend 1 "10.0.0.6:80": weight out of range: -1`)},
		{"both faults of backend 2", strings.Count(err.Error(), "static backend 2 ") == 2},
		{"the duplicate's first entry", strings.Contains(err.Error(), "same as static backend 1")},
		{"nothing about backend 4", !strings.Contains(err.Error(), "static backend 4")},
	} {
		if !check.ok {
			t.Errorf("error does not match %s:\n%v", check.what, err)
		}
	}
}

// FuzzParseAddress: an accepted address is canonical (parsing it again gives
// it back), splits into a host and a port 1-65535, and is short; anything
// rejected is an *AddressError naming the input. Canonical forms are never
// longer than the input (lowercase, compressed IPv6, no port zeros).
func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{
		"10.0.0.5:8080", "[::1]:80", "[fe80::1%eth0]:80", "web:80", "web.local.:1", "[::ffff:1.2.3.4]:9",
		"", ":", "[]:80", "[:80", "a:b:c", "10.0.0.256:1", "0.0.0.0:1", "web:0", "web:65536", "x:080",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseAddress(s)
		if err != nil {
			var ae *AddressError
			if !errors.As(err, &ae) || ae.Address != s {
				t.Fatalf("ParseAddress(%q): error %v is not an *AddressError for the input", s, err)
			}
			return
		}
		again, err := ParseAddress(got)
		if err != nil || again != got {
			t.Fatalf("ParseAddress(%q) = %q, which parses to %q, %v", s, got, again, err)
		}
		host, port, err := net.SplitHostPort(got)
		if err != nil || host == "" {
			t.Fatalf("ParseAddress(%q) = %q, which net cannot split: %v", s, got, err)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			t.Fatalf("ParseAddress(%q) = %q with port %q", s, got, port)
		}
		if len(got) > len(s) {
			t.Fatalf("ParseAddress(%q) = %q is longer than its input", s, got)
		}
	})
}
