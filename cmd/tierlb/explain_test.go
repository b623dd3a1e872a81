package main

import (
	"encoding/json"
	"io"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tierlb/tierlb/admin"
	"github.com/tierlb/tierlb/backends"
)

func TestExplainGolden(t *testing.T) {
	tests := []struct {
		name, file string
		color      bool
	}{
		{"explain", "explain.json", false},
		{"explain-color", "explain.json", true},
		{"explain-empty", "empty.json", false},
		{"explain-swarm", "explain-swarm.json", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := fakeAdminAPI(t, map[string]string{"/api/v1/explain": tt.file})
			code, out, errOut := runAdminCLI(t, "explain", tt.color, nil, "--admin", url)
			if code != exitOK || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			checkGolden(t, tt.name, out)
		})
	}
}

// TestStatusAndExplainAgainstAdminServer reads a real admin server, so the
// CLI and the API agree on the JSON, and the wildcard listen address taken
// from TIERLB_ADMIN_LISTEN is reached on loopback.
func TestStatusAndExplainAgainstAdminServer(t *testing.T) {
	set := backends.NewSet("app", backends.RoundRobin, backends.SetOptions{})
	t.Cleanup(set.Close)
	set.Update([]backends.Spec{{ID: "web-1", Address: "127.0.0.1:8001", Weight: 3}})
	b := set.Backend("web-1")
	b.ConnOpened()
	b.ConnClosed(2048, 4096)
	b.SetHealth(false, "connection refused")
	srv := admin.New(admin.Options{
		Services: admin.ServiceList{{Name: "app", Listen: "127.0.0.1:9000", Set: set}},
		Explain: func() []admin.Explanation {
			return []admin.Explanation{{Container: "0123456789abcdef0123", Name: "web-1", Service: "app", Routed: true, Reason: "routed"}}
		},
	})
	api := httptest.NewServer(srv.Handler())
	t.Cleanup(api.Close)
	env := map[string]string{"TIERLB_ADMIN_LISTEN": strings.Replace(api.Listener.Addr().String(), "127.0.0.1", "0.0.0.0", 1)}

	code, out, errOut := runAdminCLI(t, "status", false, env)
	if code != exitOK {
		t.Fatalf("status: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"app      127.0.0.1:9000  roundrobin  1         0   1     0         0      0       -       -             -            -",
		"app      web-1    127.0.0.1:8001  down   3       0     0       1      2.0 KiB     4.0 KiB    0       -       -             -            -      -           connection refused"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	// The filters reach the API, which answers for them.
	for _, tt := range []struct {
		args       []string
		code       int
		out, error string
	}{
		{[]string{"--state", "down", "--backend", "WEB"}, exitOK, "app      web-1    127.0.0.1:8001  down", ""},
		{[]string{"--state", "up"}, exitOK, "no backend matches the filter", ""},
		{[]string{"--service", "db"}, exitRuntime, "", `answered 404 Not Found for /api/v1/services?service=db: service "db" not found`},
	} {
		code, out, errOut := runAdminCLI(t, "status", false, env, tt.args...)
		if code != tt.code || !strings.Contains(out, tt.out) || !strings.Contains(errOut, tt.error) {
			t.Errorf("status %v: exit %d\n%s%s\nwant exit %d with %q, stderr %q", tt.args, code, out, errOut, tt.code, tt.out, tt.error)
		}
	}
	code, out, errOut = runAdminCLI(t, "explain", false, env)
	if code != exitOK || !strings.Contains(out, "web-1      0123456789ab  app      yes     -        -        routed") {
		t.Fatalf("explain: exit %d, stderr %q:\n%s", code, errOut, out)
	}
	code, out, _ = runAdminCLI(t, "status", false, env, "--json")
	var decoded []admin.ServiceStatus
	if code != exitOK || json.Unmarshal([]byte(out), &decoded) != nil || decoded[0].Backends[0].TotalConnections != 1 {
		t.Fatalf("status --json: exit %d:\n%s", code, out)
	}
}

// TestUseColor checks colour goes only to a real terminal: a pseudo-terminal
// is one; a pipe, a buffer and /dev/null (a char device) are not.
func TestUseColor(t *testing.T) {
	none := func(string) string { return "" }
	pty := openPty(t)
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { devNull.Close() })
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })

	tests := []struct {
		name string
		out  io.Writer
		env  func(string) string
		want bool
	}{
		{"terminal", pty, none, true},
		{"terminal with NO_COLOR", pty, func(k string) string { return map[string]string{"NO_COLOR": "1"}[k] }, false},
		{"dumb terminal", pty, func(k string) string { return map[string]string{"TERM": "dumb"}[k] }, false},
		{"dev null", devNull, none, false},
		{"pipe", w, none, false},
		{"buffer", &strings.Builder{}, none, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := useColor(tt.out, tt.env); got != tt.want {
				t.Fatalf("useColor = %v, want %v", got, tt.want)
			}
		})
	}
}

// openPty opens the follower side of a new pseudo-terminal.
func openPty(t *testing.T) *os.File {
	t.Helper()
	leader, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { leader.Close() })
	fd := int(leader.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	follower, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pty follower: %v", err)
	}
	t.Cleanup(func() { follower.Close() })
	return follower
}
