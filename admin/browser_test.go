package admin

import (
	"bytes"
	"context"
	"flag"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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

var rowState = regexp.MustCompile(`<tr class="backend" data-backend="127\.0\.0\.1:8001" data-state="(\w+)">\s*` +
	`<td>127\.0\.0\.1:8001</td>\s*<td>127\.0\.0\.1:8001</td>\s*<td>-</td>\s*` +
	`<td><span class="state state-(\w+)">(\w+)</span></td>\s*<td class="reason">([^<]*)</td>`)

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
