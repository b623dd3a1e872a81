package admin

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"
)

//go:embed page.html.tmpl
var pageSource string

// pageTemplate is parsed once; a template error is a build-time bug that the
// tests catch, so New never fails at run time.
var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"bytes": FormatBytes,
	"join":  strings.Join,
}).Parse(pageSource))

// pageData is what the status page renders.
type pageData struct {
	Now      time.Time
	Services []pageService
	// Unrouted are the containers discovery saw but does not route, and
	// routed ones with warnings.
	Unrouted []Explanation
	Explain  bool
	Pprof    bool
}

type pageService struct {
	ServiceStatus
	Up       int
	Backends []pageBackend
}

type pageBackend struct {
	BackendStatus
	ConnectErrorsTotal uint64
	// Check is the last probe as "ok 3s ago"; empty when none.
	Check string
}

// page answers GET /: the HTML status page, refreshing itself every 5s.
func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	data := pageData{Now: now, Explain: s.opts.Explain != nil, Pprof: s.opts.Pprof}
	for _, svc := range snapshot(s.opts.Services) {
		ps := pageService{ServiceStatus: svc}
		for _, b := range svc.Backends {
			if b.State == "up" {
				ps.Up++
			}
			pb := pageBackend{BackendStatus: b}
			for _, n := range b.ConnectErrors {
				pb.ConnectErrorsTotal += n
			}
			if c := b.LastCheck; c != nil {
				pb.Check = c.Result + " " + FormatAge(now.Sub(c.At))
			}
			ps.Backends = append(ps.Backends, pb)
		}
		data.Services = append(data.Services, ps)
	}
	if s.opts.Explain != nil {
		for _, e := range s.opts.Explain() {
			if !e.Routed || len(e.Warnings) > 0 {
				data.Unrouted = append(data.Unrouted, e)
			}
		}
	}
	// Render to a buffer first so a template error becomes a clean 500
	// instead of half a page.
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, data); err != nil {
		s.log.Error("admin: render status page", "err", err)
		http.Error(w, "render status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(buf.Bytes())
}

// FormatBytes formats n in binary units: 0 B, 1023 B, 1.0 KiB, 12.3 MiB.
// The status page and tierlb status share it.
func FormatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// FormatAge formats how long ago something happened, to the second.
func FormatAge(d time.Duration) string {
	if d < time.Second {
		return "just now"
	}
	return d.Truncate(time.Second).String() + " ago"
}
