package admin

import (
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/tierlb/tierlb/backends"
)

func TestActions(t *testing.T) {
	const b1 = "/api/v1/services/app/backends/127.0.0.1:8001/"
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	tests := []struct {
		name    string
		token   string
		path    string
		header  http.Header
		code    int
		errText string         // for errors: a substring of the "error" field
		state   backends.State // for 200: the backend's state afterwards
	}{
		{name: "drain without token on loopback", path: b1 + "drain", code: 200, state: backends.StateDraining},
		{name: "maint", path: b1 + "maint", code: 200, state: backends.StateMaint},
		{name: "ready", path: b1 + "ready", code: 200, state: backends.StateUp},
		{name: "unknown service", path: "/api/v1/services/nope/backends/x/drain", code: 404, errText: `service "nope" not found`},
		{name: "unknown backend", path: "/api/v1/services/app/backends/10.9.9.9:1/maint", code: 404,
			errText: `backend "10.9.9.9:1" not found in service "app"`},
		{name: "backend of an empty service", path: "/api/v1/services/db/backends/x/ready", code: 404,
			errText: `backend "x" not found in service "db"`},
		{name: "unknown action", path: b1 + "up", code: 404, errText: `unknown action "up" (want drain, ready or maint)`},
		{name: "rebinding Host refused", path: b1 + "drain", header: http.Header{"Host": {"evil.example:9090"}},
			code: 403, errText: `need a loopback Host header, got "evil.example:9090"`},
		{name: "cross-site browser POST refused", path: b1 + "maint", header: http.Header{"Sec-Fetch-Site": {"cross-site"}},
			code: 403},
		{name: "foreign Origin refused", path: b1 + "maint", header: http.Header{"Origin": {"http://evil.example"}},
			code: 403},
		{name: "token: none sent", token: "s3cret", path: b1 + "drain", code: 401, errText: "missing or wrong bearer token"},
		{name: "token: wrong", token: "s3cret", path: b1 + "drain", header: bearer("s3cre"), code: 401},
		{name: "token: other scheme", token: "s3cret", path: b1 + "drain",
			header: http.Header{"Authorization": {"Basic czNjcmV0"}}, code: 401},
		{name: "token: checked before lookup", token: "s3cret", path: "/api/v1/services/nope/backends/x/drain", code: 401},
		{name: "token: right", token: "s3cret", path: b1 + "maint", header: bearer("s3cret"), code: 200, state: backends.StateMaint},
		{name: "token: scheme case-insensitive", token: "s3cret", path: b1 + "drain",
			header: http.Header{"Authorization": {"bearer s3cret"}}, code: 200, state: backends.StateDraining},
		{name: "token: any Host", token: "s3cret", path: b1 + "ready",
			header: http.Header{"Authorization": {"Bearer s3cret"}, "Host": {"lb.example:9090"}}, code: 200, state: backends.StateUp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startServer(t, Options{Token: tt.token})
			h := tt.header.Clone()
			if host := h.Get("Host"); host != "" {
				h.Del("Host")
				defer func(c *http.Client) { f.client = c }(f.client)
				f.client = &http.Client{Transport: hostRewriter{host}}
			}
			code, body, hdr := f.do(t, "POST", tt.path, h)
			if code != tt.code {
				t.Fatalf("status %d, want %d; body %s", code, tt.code, body)
			}
			b := f.app.Backend("127.0.0.1:8001")
			if code != 200 {
				if st, _ := b.State(); st != backends.StateUp {
					t.Errorf("refused request changed the state to %v", st)
				}
				if code == 401 && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("401 without a Bearer challenge")
				}
				if tt.errText != "" {
					var e apiError
					if err := json.Unmarshal([]byte(body), &e); err != nil || !strings.Contains(e.Error, tt.errText) {
						t.Errorf("error body %s, want an error containing %q", body, tt.errText)
					}
				}
				return
			}
			if st, _ := b.State(); st != tt.state {
				t.Errorf("state %v, want %v", st, tt.state)
			}
			var got BackendStatus
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("decode %s: %v", body, err)
			}
			if got.ID != "127.0.0.1:8001" || got.State != tt.state.String() {
				t.Errorf("answer %+v, want the backend in state %v", got, tt.state)
			}
		})
	}
}

// hostRewriter sends requests with a chosen Host header, as a browser
// following a rebound DNS name would.
type hostRewriter struct{ host string }

func (h hostRewriter) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Host = h.host
	return http.DefaultTransport.RoundTrip(r)
}

// TestActionsRefusedOnOpenListenerWithoutToken checks the rule for a
// listener reachable from other hosts (not bound here: only the decision is
// under test).
func TestActionsRefusedOnOpenListenerWithoutToken(t *testing.T) {
	services, app := testServices(t)
	for _, listen := range []string{"0.0.0.0:9090", ":9090", "[::]:9090", "10.1.2.3:9090"} {
		t.Run(listen, func(t *testing.T) {
			h := New(Options{Listen: listen, Services: services}).Handler()
			rec := httptestRecord(h, "POST", "/api/v1/services/app/backends/127.0.0.1:8001/maint", "127.0.0.1:9090", nil)
			if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "admin.token is not set") {
				t.Fatalf("got %d %s, want 403 explaining admin.token", rec.Code, rec.Body.String())
			}
			if st, _ := app.Backend("127.0.0.1:8001").State(); st != backends.StateUp {
				t.Fatalf("refused request changed the state to %v", st)
			}
			// The same listener with a token accepts an authorized change.
			h = New(Options{Listen: listen, Services: services, Token: "t"}).Handler()
			rec = httptestRecord(h, "POST", "/api/v1/services/app/backends/127.0.0.1:8001/ready", "lb:9090",
				http.Header{"Authorization": {"Bearer t"}})
			if rec.Code != http.StatusOK {
				t.Fatalf("with token: %d %s", rec.Code, rec.Body.String())
			}
		})
	}
}

func TestActionOnIPv6Backend(t *testing.T) {
	set := newTestSet(t, "v6", "[::1]:8080")
	h := New(Options{Listen: "[::1]:9090", Services: ServiceList{{Name: "v6", Set: set}}}).Handler()
	path := "/api/v1/services/v6/backends/" + url.PathEscape("[::1]:8080") + "/drain"
	rec := httptestRecord(h, "POST", path, "[::1]:9090", nil)
	if rec.Code != 200 {
		t.Fatalf("POST %s: %d %s", path, rec.Code, rec.Body.String())
	}
	if st, _ := set.Backend("[::1]:8080").State(); st != backends.StateDraining {
		t.Fatalf("state %v, want draining", st)
	}
}

func TestIsLoopback(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"127.0.0.1:9090", true}, {"127.1.2.3:1", true}, {"[::1]:9090", true}, {"localhost:9090", true},
		{"LOCALHOST", true}, {"::1", true}, {"[::ffff:127.0.0.1]:80", true},
		{":9090", false}, {"0.0.0.0:9090", false}, {"[::]:9090", false}, {"10.0.0.1:9090", false},
		{"localhost.evil.example:80", false}, {"", false}, {"example.com", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := isLoopback(tt.in); got != tt.want {
				t.Fatalf("isLoopback(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func FuzzTokenMatches(f *testing.F) {
	f.Add("Bearer abc", "abc")
	f.Add("bearer  abc ", "abc")
	f.Add("Basic abc", "abc")
	f.Add("Bearer", "")
	f.Fuzz(func(t *testing.T, header, token string) {
		got := tokenMatches(header, token)
		scheme, rest, ok := strings.Cut(header, " ")
		want := ok && strings.EqualFold(scheme, "bearer") && strings.TrimSpace(rest) == token
		if got != want {
			t.Fatalf("tokenMatches(%q, %q) = %v, want %v", header, token, got, want)
		}
	})
}

func FuzzIsLoopback(f *testing.F) {
	for _, s := range []string{"127.0.0.1:80", "[::1]:1", "localhost", ":80", "[fe80::1%lo]:80", "1.2.3.4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, hostport string) {
		if !isLoopback(hostport) {
			return
		}
		// Anything judged loopback must name only loopback.
		host := hostport
		if h, _, err := net.SplitHostPort(hostport); err == nil {
			host = h
		}
		host = strings.Trim(host, "[]")
		if ip, err := netip.ParseAddr(host); err == nil && !ip.Unmap().IsLoopback() {
			t.Fatalf("isLoopback(%q) = true for non-loopback %v", hostport, ip)
		} else if err != nil && !strings.EqualFold(host, "localhost") {
			t.Fatalf("isLoopback(%q) = true for host %q", hostport, host)
		}
	})
}
