package config

import (
	"regexp"
	"strings"
	"testing"
)

// The patterns isServiceName and isLabelPrefix implement.
var (
	serviceNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
	labelPrefixRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$`)
)

func TestNameMatchers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		service bool
		prefix  bool
	}{
		{name: "empty", in: ""},
		{name: "one letter", in: "a", service: true, prefix: true},
		{name: "capital", in: "Web", service: true},
		{name: "dotted", in: "tierlb.v2", service: true, prefix: true},
		{name: "dash inside", in: "my-app_1", service: true},
		{name: "leading dash", in: "-web"},
		{name: "leading underscore", in: "_web"},
		{name: "trailing dash", in: "web-", service: true},
		{name: "trailing dot", in: "tierlb.", service: true},
		{name: "space", in: "my app"},
		{name: "slash", in: "a/b"},
		{name: "non-ASCII", in: "wéb"},
		{name: "63 bytes", in: strings.Repeat("a", 63), service: true, prefix: true},
		{name: "64 bytes", in: strings.Repeat("a", 64), prefix: true},
		{name: "newline after", in: "web\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := isServiceName(tc.in); got != tc.service {
				t.Errorf("isServiceName(%q) = %v, want %v", tc.in, got, tc.service)
			}
			if got := isLabelPrefix(tc.in); got != tc.prefix {
				t.Errorf("isLabelPrefix(%q) = %v, want %v", tc.in, got, tc.prefix)
			}
			checkNameMatchers(t, tc.in)
		})
	}
}

func FuzzNameMatchers(f *testing.F) {
	for _, s := range []string{"", "a", "web-1", "tierlb.", "-x", strings.Repeat("b", 64), "a.b-c_d"} {
		f.Add(s)
	}
	f.Fuzz(checkNameMatchers)
}

func checkNameMatchers(t *testing.T, s string) {
	if got, want := isServiceName(s), serviceNameRE.MatchString(s); got != want {
		t.Errorf("isServiceName(%q) = %v, the pattern says %v", s, got, want)
	}
	if got, want := isLabelPrefix(s), labelPrefixRE.MatchString(s); got != want {
		t.Errorf("isLabelPrefix(%q) = %v, the pattern says %v", s, got, want)
	}
}
