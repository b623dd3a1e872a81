package health

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings, one per expected error; none: valid
	}{
		{"zero value", Config{}, nil},
		{"defaults", DefaultConfig(), nil},
		{"every type", Config{Type: TypeDocker}, nil},
		{"send-expect", Config{Type: TypeSendExpect, Send: `PING\r\n`, Expect: `re:^\+PONG`}, nil},
		{"unknown type", Config{Type: "icmp"}, []string{`health.type: unknown type "icmp"`}},
		{"negative durations", Config{Interval: -time.Second, Timeout: -1}, []string{"health.interval: must be positive", "health.timeout: must be positive"}},
		{"negative rise and fall", Config{Rise: -1, Fall: -2}, []string{"health.rise: must be at least 1", "health.fall: must be at least 1"}},
		{"relative path", Config{Type: TypeHTTP, HTTPPath: "healthz"}, []string{`health.http.path: must start with "/"`}},
		{"path with space", Config{HTTPPath: "/a b"}, []string{"health.http.path: must not contain spaces"}},
		{"bad host", Config{HTTPHost: "a/b"}, []string{"health.http.host: not a valid Host header"}},
		{"bad status", Config{HTTPExpectStatus: "2xx"}, []string{`health.http.expect_status: "2xx" is not a status`}},
		{"reversed status", Config{HTTPExpectStatus: "399-200"}, []string{`health.http.expect_status: range "399-200" is reversed`}},
		{"bad send escape", Config{Send: `PING\q`}, []string{`health.send: invalid escape "\\q" at byte 4`}},
		{"bad expect escape", Config{Expect: `\x4`}, []string{"health.expect: invalid escape"}},
		{"bad regexp", Config{Expect: "re:(+"}, []string{"health.expect: bad regular expression"}},
		{"send-expect with nothing", Config{Type: TypeSendExpect}, []string{"health.expect: type send-expect needs send, expect or both"}},
		{"passive", Config{Passive: PassiveConfig{MaxFails: -1, FailTimeout: -time.Second}}, []string{"health.passive.max_fails: must be 0 (off) or more", "health.passive.fail_timeout: must be positive"}},
		{"all at once", Config{Type: "x", Rise: -1, HTTPExpectStatus: "600", Send: `\`}, []string{"health.type", "health.rise", "health.http.expect_status: status 600", "health.send"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tt.want)
			}
			var joined interface{ Unwrap() []error }
			if !errors.As(err, &joined) || len(joined.Unwrap()) != len(tt.want) {
				t.Fatalf("Validate() = %v, want %d errors", err, len(tt.want))
			}
			for i, e := range joined.Unwrap() {
				if !strings.Contains(e.Error(), tt.want[i]) {
					t.Errorf("error %d = %q, want it to contain %q", i, e, tt.want[i])
				}
			}
		})
	}
}

func TestWithDefaults(t *testing.T) {
	got := Config{}.WithDefaults()
	want := DefaultConfig()
	want.Passive.MaxFails = 0 // 0 is "off", not "default"
	if got != want {
		t.Fatalf("Config{}.WithDefaults() = %+v, want %+v", got, want)
	}
	custom := Config{Type: TypeHTTP, Interval: time.Second, Rise: 5, HTTPPath: "/up"}.WithDefaults()
	if custom.Interval != time.Second || custom.Rise != 5 || custom.HTTPPath != "/up" || custom.Fall != DefaultFall {
		t.Fatalf("WithDefaults overwrote set fields or missed zero ones: %+v", custom)
	}
}

func TestNewChecker(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		docker  ContainerHealth
		want    string // %T of the checker
		wantErr string
	}{
		{"default is tcp", Config{}, nil, "health.TCPChecker", ""},
		{"http", Config{Type: TypeHTTP}, nil, "*health.HTTPChecker", ""},
		{"send-expect", Config{Type: TypeSendExpect, Expect: "OK"}, nil, "*health.SendExpectChecker", ""},
		{"docker", Config{Type: TypeDocker}, fakeDocker{}, "health.DockerChecker", ""},
		{"docker without engine", Config{Type: TypeDocker}, nil, "", "docker checks need a Docker connection"},
		{"none", Config{Type: TypeNone}, nil, "health.NoneChecker", ""},
		{"invalid", Config{Type: "udp"}, nil, "", "health.type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewChecker(tt.cfg, tt.docker)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewChecker() error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := typeName(c); got != tt.want {
				t.Fatalf("NewChecker() = %s, want %s", got, tt.want)
			}
		})
	}
	h, _ := NewChecker(Config{Type: TypeHTTP}, nil)
	if hc := h.(*HTTPChecker); hc.Path != DefaultHTTPPath || hc.Status.String() != DefaultHTTPExpectStatus {
		t.Fatalf("http defaults not applied: path %q status %q", hc.Path, hc.Status)
	}
}

func TestParseStatusRanges(t *testing.T) {
	tests := []struct {
		in      string
		want    string // String() of the result
		in200   bool
		wantErr string
	}{
		{"200-399", "200-399", true, ""},
		{"200,204,300-399", "200,204,300-399", true, ""},
		{" 204 , 300 - 302 ", "204,300-302", false, ""},
		{"500", "500", false, ""},
		{"", "", false, "empty status list"},
		{"200,", "", false, "empty item"},
		{"20", "", false, "outside 100-599"},
		{"+200", "", false, "not a status"},
		{"200-", "", false, "not a status"},
		{"-200", "", false, "not a status"},
		{"2000", "", false, "not a status"},
		{"200-300-400", "", false, "not a status"},
		{"300-200", "", false, "reversed"},
		{"abc", "", false, "not a status"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, err := ParseStatusRanges(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.String() != tt.want || r.Contains(200) != tt.in200 {
				t.Fatalf("got %s (200 in: %v), want %s (%v)", r, r.Contains(200), tt.want, tt.in200)
			}
		})
	}
}

// FuzzParseStatusRanges: parsing never panics, accepted lists only hold
// valid statuses, and String round-trips to the same set.
func FuzzParseStatusRanges(f *testing.F) {
	for _, s := range []string{"200-399", "200,204,300-399", " 200 ", "", ",", "1-2-3", "599-100", "0200"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseStatusRanges(s)
		if err != nil {
			return
		}
		again, err := ParseStatusRanges(r.String())
		if err != nil {
			t.Fatalf("String() %q of %q does not parse: %v", r.String(), s, err)
		}
		for code := 0; code < 700; code++ {
			in := r.Contains(code)
			if in && (code < 100 || code > 599) {
				t.Fatalf("%q accepts status %d", s, code)
			}
			if in != again.Contains(code) {
				t.Fatalf("round trip of %q changed status %d", s, code)
			}
		}
	})
}
