package main

import (
	"bytes"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tierlb/tierlb/internal/testkit"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files under testdata/admin")

// goldenNow is the clock of the golden tests: three seconds after
// shop-web-1's last check in testdata/admin/services.json.
var goldenNow = time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)

// fakeAdminAPI serves the testdata JSON files at the admin API's paths.
func fakeAdminAPI(t *testing.T, files map[string]string) string {
	t.Helper()
	mux := http.NewServeMux()
	for path, file := range files {
		body, err := os.ReadFile(filepath.Join("testdata", "admin", file))
		if err != nil {
			t.Fatal(err)
		}
		mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(body)
		})
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// runAdminCLI runs status or explain with a pinned clock and colour choice.
func runAdminCLI(t *testing.T, cmd string, color bool, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	c := &adminCLI{
		stdout: &stdout, stderr: &stderr, color: color,
		getenv: func(k string) string { return env[k] },
		now:    func() time.Time { return goldenNow },
		client: &http.Client{Timeout: 5 * time.Second},
	}
	t.Cleanup(c.client.CloseIdleConnections)
	var code int
	switch cmd {
	case "status":
		code = c.status(args)
	case "explain":
		code = c.explain(args)
	default:
		t.Fatalf("unknown command %s", cmd)
	}
	return code, stdout.String(), stderr.String()
}

// checkGolden compares got with testdata/admin/NAME.golden, or rewrites the
// file under -update.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "admin", name+".golden")
	if *updateGolden {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it)\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

func TestStatusGolden(t *testing.T) {
	tests := []struct {
		name, file string
		color      bool
	}{
		{"status", "services.json", false},
		{"status-color", "services.json", true},
		{"status-empty", "empty.json", false},
		{"status-no-backends", "services-no-backends.json", false},
		{"status-swarm", "services-swarm.json", false},
		{"status-rates", "services-rates.json", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := fakeAdminAPI(t, map[string]string{"/api/v1/services": tt.file})
			code, out, errOut := runAdminCLI(t, "status", tt.color, nil, "--admin", url)
			if code != exitOK || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			checkGolden(t, tt.name, out)
		})
	}
}

// TestStatusFilterFlags: the filter flags become the API's query, and the
// answer is filtered as the API would, so an older tierlb that ignores the
// query still gives what was asked.
func TestStatusFilterFlags(t *testing.T) {
	body, err := os.ReadFile(filepath.Join("testdata", "admin", "services-rates.json"))
	if err != nil {
		t.Fatal(err)
	}
	queries := make(chan string, 1)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		queries <- r.URL.RawQuery
		w.Write(body)
	}))
	t.Cleanup(api.Close)
	tests := []struct {
		name     string
		args     []string
		query    string
		code     int
		backends []string // the backend rows, by id
		stdout   string
		stderr   string
	}{
		{name: "none", query: "", backends: []string{"shop-web-1", "shop-web-2", "shop-web-3", "10.0.0.9:8080"}},
		{name: "service", args: []string{"--service", "app"}, query: "service=app", backends: []string{"shop-web-1", "shop-web-2", "shop-web-3", "10.0.0.9:8080"}},
		{name: "other service", args: []string{"--service", "db"}, query: "service=db", stdout: "no backends"},
		{name: "state", args: []string{"--state", "down,draining"}, query: "state=down%2Cdraining", backends: []string{"shop-web-2", "shop-web-3"}},
		{name: "backend", args: []string{"--backend", "WEB-1"}, query: "backend=WEB-1", backends: []string{"shop-web-1"}},
		{name: "backend by address", args: []string{"--backend", "10.0.0."}, query: "backend=10.0.0.", backends: []string{"10.0.0.9:8080"}},
		{name: "nothing matches", args: []string{"--state", "up", "--backend", "web-2"}, query: "backend=web-2&state=up", stdout: "no backend matches the filter"},
		{name: "bad state", args: []string{"--state", "sick"}, code: exitConfig, stderr: `tierlb status: --state: unknown state "sick" (want up, down, draining or maint`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runAdminCLI(t, "status", false, nil, append([]string{"--admin", api.URL}, tt.args...)...)
			if code != tt.code || !strings.Contains(out, tt.stdout) || !strings.Contains(errOut, tt.stderr) {
				t.Fatalf("exit %d\n%s%s\nwant exit %d with %q, stderr %q", code, out, errOut, tt.code, tt.stdout, tt.stderr)
			}
			if tt.code != exitOK {
				return
			}
			if q := <-queries; q != tt.query {
				t.Errorf("query %q, want %q", q, tt.query)
			}
			var rows []string
			lines := strings.Split(out, "\n")
			for i, l := range lines {
				if strings.HasPrefix(l, "SERVICE  BACKEND") {
					for _, r := range lines[i+1:] {
						if f := strings.Fields(r); len(f) > 1 {
							rows = append(rows, f[1])
						}
					}
				}
			}
			if !slices.Equal(rows, tt.backends) {
				t.Errorf("backend rows %v, want %v:\n%s", rows, tt.backends, out)
			}
			// The services table keeps every count, whatever the filter.
			if tt.code == exitOK && !strings.Contains(out, "4         1   1     1         1      15") && tt.name != "other service" {
				t.Errorf("the services table lost its counts:\n%s", out)
			}
		})
	}
}

// TestStatusColorKeepsAlignment checks that painting the state column
// changes nothing but the escapes: same columns, same padding.
func TestStatusColorKeepsAlignment(t *testing.T) {
	for _, cmd := range []string{"status", "explain"} {
		t.Run(cmd, func(t *testing.T) {
			url := fakeAdminAPI(t, map[string]string{"/api/v1/services": "services.json", "/api/v1/explain": "explain.json"})
			_, plain, _ := runAdminCLI(t, cmd, false, nil, "--admin", url)
			_, colored, _ := runAdminCLI(t, cmd, true, nil, "--admin", url)
			if colored == plain || !strings.Contains(colored, "\x1b[") {
				t.Fatal("colour on printed no escapes")
			}
			if got := ansi.ReplaceAllString(colored, ""); got != plain {
				t.Errorf("stripped of escapes, the coloured table differs:\n%s\nplain:\n%s", got, plain)
			}
		})
	}
}

func TestStatusJSONPassesThrough(t *testing.T) {
	for _, tt := range []struct{ cmd, path, file string }{
		{"status", "/api/v1/services", "services.json"},
		{"explain", "/api/v1/explain", "explain.json"},
	} {
		t.Run(tt.cmd, func(t *testing.T) {
			url := fakeAdminAPI(t, map[string]string{tt.path: tt.file})
			code, out, _ := runAdminCLI(t, tt.cmd, true, nil, "--admin", url, "--json")
			want, err := os.ReadFile(filepath.Join("testdata", "admin", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if code != exitOK || out != string(want) {
				t.Fatalf("exit %d; --json printed\n%s\nwant the API's body as is", code, out)
			}
		})
	}
}

func TestStatusAndExplainErrors(t *testing.T) {
	closed := testkit.ClosedPort(t)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/broken/api/v1/services", "/broken/api/v1/explain":
			w.Write([]byte(`{"not": "a list"}`))
		case "/failing/api/v1/services", "/failing/api/v1/explain":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte(`{"error": "boom"}`))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(api.Close)

	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		code   int
		stdout string // substring
		stderr string // substring
	}{
		{name: "unreachable", args: []string{"--admin", "http://" + closed}, code: exitRuntime,
			stderr: "cannot reach the admin API at http://" + closed + ": dial tcp " + closed + ": connect: connection refused; is tierlb running with admin.listen set?"},
		{name: "unreachable from env", env: map[string]string{"TIERLB_ADMIN_LISTEN": closed}, code: exitRuntime,
			stderr: "cannot reach the admin API at http://" + closed + ":"},
		{name: "not tierlb", args: []string{"--admin", api.URL}, code: exitRuntime, stderr: "answered 404 Not Found for /api/v1/"},
		{name: "api error", args: []string{"--admin", api.URL + "/failing/"}, code: exitRuntime,
			stderr: "answered 500 Internal Server Error for /api/v1/"},
		{name: "api error text", args: []string{"--admin", api.URL + "/failing"}, code: exitRuntime, stderr: ": boom\n"},
		{name: "bad body", args: []string{"--admin", api.URL + "/broken"}, code: exitRuntime, stderr: "does not decode"},
		{name: "bad url", args: []string{"--admin", "ftp://x"}, code: exitConfig, stderr: "scheme must be http or https"},
		{name: "unknown flag", args: []string{"--nope"}, code: exitConfig, stderr: "unknown flag: --nope"},
		{name: "extra argument", args: []string{"app"}, code: exitConfig, stderr: `unexpected argument "app"`},
		{name: "help", args: []string{"-h"}, code: exitOK, stdout: "--admin string"},
	}
	for _, cmd := range []string{"status", "explain"} {
		for _, tt := range tests {
			t.Run(cmd+"/"+tt.name, func(t *testing.T) {
				code, out, errOut := runAdminCLI(t, cmd, false, tt.env, tt.args...)
				if code != tt.code {
					t.Fatalf("exit %d, want %d; stderr %q", code, tt.code, errOut)
				}
				if !strings.Contains(out, tt.stdout) || !strings.Contains(errOut, tt.stderr) {
					t.Fatalf("stdout %q\nstderr %q\nwant stdout with %q, stderr with %q", out, errOut, tt.stdout, tt.stderr)
				}
				if tt.code != exitOK && out != "" {
					t.Errorf("a failure printed to stdout: %q", out)
				}
			})
		}
	}
}

func TestResolveAdminURL(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{in: "http://127.0.0.1:9090", want: "http://127.0.0.1:9090"},
		{in: "127.0.0.1:9090", want: "http://127.0.0.1:9090"},
		{in: "0.0.0.0:9090", want: "http://127.0.0.1:9090"},
		{in: ":9090", want: "http://127.0.0.1:9090"},
		{in: "[::]:9090", want: "http://[::1]:9090"},
		{in: "[::1]:9090", want: "http://[::1]:9090"},
		{in: "https://lb.example/tierlb/", want: "https://lb.example/tierlb"},
		{in: "http://lb.example:9090/", want: "http://lb.example:9090"},
		{in: "localhost:9090", want: "http://localhost:9090"},
		{in: "ftp://lb:21", err: "scheme must be http or https"},
		{in: "http://", err: "want http://HOST:PORT[/PATH]"},
		{in: "http://u:p@lb:9090", err: "want http://HOST:PORT[/PATH]"},
		{in: "http://lb:9090/?x=1", err: "want http://HOST:PORT[/PATH]"},
		{in: "http://[::1", err: "invalid admin URL"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := resolveAdminURL(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("resolveAdminURL(%q) = %q, %v; want an error with %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("resolveAdminURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func FuzzResolveAdminURL(f *testing.F) {
	for _, s := range []string{"127.0.0.1:9090", "http://[::]:1/x/", ":9090", "https://a/b?c", "%zz", "http://[::1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := resolveAdminURL(s)
		if err != nil {
			return
		}
		// What it returns must itself resolve to the same URL, and be
		// something an HTTP client can GET.
		again, err := resolveAdminURL(got)
		if err != nil || again != got {
			t.Fatalf("resolveAdminURL(%q) = %q, which resolves to %q, %v", s, got, again, err)
		}
		if _, err := http.NewRequest("GET", got+"/api/v1/services", nil); err != nil {
			t.Fatalf("resolveAdminURL(%q) = %q: not a request URL: %v", s, got, err)
		}
	})
}
