package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"html"
	"image"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

var screenshotCopy = flag.String("screenshot", "", "also save the browser test's last status page screenshot to this file")

// chromium finds Debian's headless browser. Under CI the browser test is
// required; elsewhere it is skipped with a hint.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed; CI must install it (apt-get install chromium) for the status page browser test")
	}
	t.Skip("chromium is not installed: apt-get install -y chromium to run the status page browser test")
	return ""
}

// browse runs one headless chromium with args and the URL and returns its
// stdout. It gets its own profile directory and process group, so a timeout
// kills every process it started and nothing is shared with other runs.
func browse(t *testing.T, bin, url string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args = append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--user-data-dir=" + t.TempDir(), "--hide-scrollbars",
	}, append(args, url)...)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.Bytes())
	}
	// Headless chromium leaves helper processes behind at times; they are
	// in the group started above.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	return stdout.Bytes()
}

var rowState = regexp.MustCompile(`<tr class="backend" data-service="app" data-backend="127\.0\.0\.1:8001" data-state="(\w+)">\s*` +
	`<td><a href="/\?service=app">app</a></td>\s*<td>127\.0\.0\.1:8001</td>\s*<td>127\.0\.0\.1:8001</td>\s*` +
	`<td><span class="state state-(\w+)">(\w+)</span></td>(?s:.*?)<td class="reason">([^<]*)</td>`)

// TestStatusPageInBrowser loads the page in a real browser, takes the backend
// down, loads it again, and checks both the DOM the browser built and the
// colours it painted.
func TestStatusPageInBrowser(t *testing.T) {
	bin := chromium(t)
	f := startServer(t, Options{})
	url := f.url + "/"

	load := func(wantState, wantReason string) image.Image {
		t.Helper()
		// One browser run both dumps the DOM and paints the page: chromium
		// start-up dominates the test's time.
		shot := filepath.Join(t.TempDir(), "status.png")
		dom := string(browse(t, bin, url, "--dump-dom", "--screenshot="+shot, "--window-size=1400,700"))
		m := rowState.FindStringSubmatch(dom)
		if m == nil {
			t.Fatalf("rendered DOM has no row for backend 127.0.0.1:8001:\n%s", dom)
		}
		if m[1] != wantState || m[2] != wantState || m[3] != wantState || m[4] != wantReason {
			t.Fatalf("backend row shows state %s/%s/%s reason %q, want %s %q", m[1], m[2], m[3], m[4], wantState, wantReason)
		}
		raw, err := os.ReadFile(shot)
		if err != nil {
			t.Fatal(err)
		}
		if *screenshotCopy != "" {
			if err := os.WriteFile(*screenshotCopy, raw, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		img, err := png.Decode(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		return img
	}

	img := load("up", "not checked yet")
	if n := countColour(img, 0x1a, 0x7f, 0x37); n < 50 {
		t.Errorf("first load: %d green pixels, want the up badges painted", n)
	}
	if n := countColour(img, 0xcf, 0x22, 0x2e); n > 0 {
		t.Errorf("first load: %d red pixels while every backend is up", n)
	}

	f.app.Backend("127.0.0.1:8001").SetHealth(false, "connection refused")
	img = load("down", "connection refused")
	if n := countColour(img, 0xcf, 0x22, 0x2e); n < 50 {
		t.Errorf("second load: %d red pixels, want the down badge painted", n)
	}
}

// countColour counts pixels within a small distance of r, g, b.
func countColour(img image.Image, r, g, b uint8) int {
	near := func(a uint32, v uint8) bool {
		d := int(a>>8) - int(v)
		return d > -6 && d < 6
	}
	n := 0
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			pr, pg, pb, _ := img.At(x, y).RGBA()
			if near(pr, r) && near(pg, g) && near(pb, b) {
				n++
			}
		}
	}
	return n
}

var screenshotDir = flag.String("screenshots", "", "save the at-scale browser test's screenshots (status-page-10.png, status-page-10000.png) in this directory")

// timingPage loads the status page in a frame the size of the window and,
// once it has loaded, writes what the browser measured into its own DOM,
// where --dump-dom shows it.
const timingPage = `<!DOCTYPE html>
<html><head><style>html, body { margin: 0; height: 100%; overflow: hidden; } iframe { border: 0; width: 100%; height: 100%; display: block; }</style></head>
<body><iframe id="status" src="/"></iframe>
<script>
document.getElementById("status").onload = function () {
	var w = this.contentWindow, nav = w.performance.getEntriesByType("navigation")[0];
	var fcp = w.performance.getEntriesByName("first-contentful-paint")[0];
	var out = document.createElement("pre");
	out.id = "timing";
	out.style.display = "none";
	out.textContent = JSON.stringify({
		response_ms: nav.responseEnd - nav.startTime, dom_ms: nav.domContentLoadedEventEnd - nav.startTime,
		load_ms: nav.loadEventStart - nav.startTime, fcp_ms: fcp ? fcp.startTime : -1,
		bytes: nav.decodedBodySize, rows: w.document.querySelectorAll("tr.backend").length,
		services: w.document.querySelectorAll("tr.service").length
	});
	document.body.appendChild(out);
};
</script></body></html>`

var timingJSON = regexp.MustCompile(`<pre id="timing"[^>]*>([^<]*)</pre>`)

// TestStatusPageAtScaleInBrowser loads the page over 10 and over 10,000
// backends, each with 15 minutes of history, in a real browser: it must show
// every service and one page of backends, and the test reports the page's
// size and the browser's load times (reported, not asserted: the machine's
// load decides them).
func TestStatusPageAtScaleInBrowser(t *testing.T) {
	bin := chromium(t)
	for _, tt := range []struct {
		services, perService int
		file, path           string
		shown                int  // service rows
		extra                bool // a screenshot for the README only
	}{
		{2, 5, "status-page-10.png", "/", 2, false},
		{100, 100, "status-page-10000.png", "/", 100, false},
		{100, 100, "status-page-10000-service.png", "/?service=svc-000", 1, true},
	} {
		n := tt.services * tt.perService
		t.Run(tt.file, func(t *testing.T) {
			if tt.extra && *screenshotDir == "" {
				t.Skip("a screenshot for the README: run with -screenshots DIR")
			}
			services := scaleServices(t, tt.services, tt.perService)
			s := New(Options{Services: services})
			playTraffic(s.history, services, HistorySlots+1)
			mux := http.NewServeMux()
			mux.Handle("/", s.Handler())
			mux.HandleFunc("GET /_timing", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				io.WriteString(w, strings.Replace(timingPage, `src="/"`, `src="`+html.EscapeString(r.URL.Query().Get("path"))+`"`, 1))
			})
			srv := httptest.NewServer(mux)
			t.Cleanup(srv.Close)

			shot := filepath.Join(t.TempDir(), tt.file)
			dom := string(browse(t, bin, srv.URL+"/_timing?"+url.Values{"path": {tt.path}}.Encode(), "--dump-dom", "--screenshot="+shot, "--window-size=1920,1080"))
			m := timingJSON.FindStringSubmatch(dom)
			if m == nil {
				t.Fatalf("the timing page did not report:\n%.2000s", dom)
			}
			var got struct {
				ResponseMS float64 `json:"response_ms"`
				DOMMS      float64 `json:"dom_ms"`
				LoadMS     float64 `json:"load_ms"`
				FCPMS      float64 `json:"fcp_ms"`
				Bytes      int     `json:"bytes"`
				Rows       int     `json:"rows"`
				Services   int     `json:"services"`
			}
			dec := json.NewDecoder(strings.NewReader(html.UnescapeString(m[1])))
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("timing %s: %v", m[1], err)
			}
			t.Logf("%d backends: page %d bytes; browser: response %.0f ms, DOM ready %.0f ms, loaded %.0f ms, first paint %.0f ms",
				n, got.Bytes, got.ResponseMS, got.DOMMS, got.LoadMS, got.FCPMS)
			if got.Rows < min(n, 10) || got.Rows > PageSize || got.Services != tt.shown {
				t.Errorf("the browser shows %d backend rows and %d services, want %d to %d and %d", got.Rows, got.Services, min(n, 10), PageSize, tt.shown)
			}
			if got.Bytes > maxPageBytes {
				t.Errorf("page of %d bytes, over %d", got.Bytes, maxPageBytes)
			}
			raw, err := os.ReadFile(shot)
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(bytes.NewReader(raw))
			if err != nil {
				t.Fatalf("screenshot: %v", err)
			}
			// The connections charts are painted.
			if c := countColour(img, 0x09, 0x69, 0xda); c < 200 {
				t.Errorf("%d blue pixels: the connections charts are not painted", c)
			}
			if *screenshotDir != "" {
				if err := os.WriteFile(filepath.Join(*screenshotDir, tt.file), raw, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
