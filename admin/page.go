package admin

import (
	"bytes"
	"fmt"
	"net/http"
	"time"

	g "maragu.dev/gomponents"

	"github.com/tierlb/tierlb/backends"
)

// What one page shows at most, so it stays small and quick with 10,000
// backends: their status is a page of PageSize rows at a time, the rest a
// filter or a "next" away.
const (
	PageSize    = 100
	maxUnrouted = 100
)

// pageData is what the status page renders.
type pageData struct {
	Now time.Time
	// The filter form: the current values and the choices.
	Service, State, Backend string
	ServiceNames            []string
	StateChoices            []string
	Filtered                bool
	// NotUpOnly: no filter, and too many backends to list, so the list
	// holds those not up; a link lists them all.
	NotUpOnly bool
	NotFound  string // the ?service= that does not exist

	Totals   []stateCount // every backend of every service, by state
	Backends int          // ... and their number
	Services []pageService

	Rows                []pageBackend // this page of the backends the filter selects
	Matched, From, To   int
	Page, Pages         int
	PrevURL, NextURL    string
	Unrouted            []Explanation
	UnroutedMore        int
	Explain, Pprof      bool
	HistoryMinutes      int
	HistoryIntervalSecs int
	PageSize            int
}

// stateCount is one state's count, linking to the backends in that state.
type stateCount struct {
	State string
	N     int
	URL   string
}

type pageService struct {
	ServiceStatus
	URL    string
	Total  int
	Counts []stateCount
	Charts charts
}

// charts are a row's sparklines.
type charts struct{ Conns, Bytes, Errors g.Node }

type pageBackend struct {
	BackendStatus
	Service            string
	ServiceURL         string
	ConnectErrorsTotal uint64
	// Check is the last probe as "ok 3s ago"; empty when none.
	Check  string
	Charts charts
}

// stateChoices are the state filter's options: each state, and "not up".
var stateChoices = []string{"up", "down", "draining", "maint", "down,draining,maint"}

var notUp = []backends.State{backends.StateDown, backends.StateDraining, backends.StateMaint}

// page answers GET /: the HTML status page, refreshing itself every 5s. It
// takes the API's filters and a page number.
func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	f, err := parseFilter(r.URL.Query(), paramService, paramState, paramBackend, paramPage)
	if err != nil {
		http.Error(w, "status page: "+err.Error(), http.StatusBadRequest)
		return
	}
	data := s.pageData(f, time.Now())
	// Render to a buffer first so an error becomes a clean 500 instead of
	// half a page.
	var buf bytes.Buffer
	if err := renderPage(&buf, data); err != nil {
		s.log.Error("admin: render status page", "err", err)
		http.Error(w, "render status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(buf.Bytes())
}

func (s *Server) pageData(f filter, now time.Time) pageData {
	data := pageData{
		Now: now, Service: f.service, Backend: f.backend, StateChoices: stateChoices,
		Explain: s.opts.Explain != nil, Pprof: s.opts.Pprof,
		HistoryMinutes:      int(HistoryInterval * HistorySlots / time.Minute),
		HistoryIntervalSecs: int(HistoryInterval / time.Second),
		PageSize:            PageSize,
	}
	data.Filtered = f.service != "" || len(f.states) > 0 || f.backend != ""

	// The form lists every service and the totals count every backend,
	// whatever the filter.
	all, _, _ := snapshot(s.opts.Services, nil, filter{}, 0, 0)
	totals := map[string]int{}
	for _, svc := range all {
		data.ServiceNames = append(data.ServiceNames, svc.Name)
		for st, n := range svc.States {
			totals[st] += n
			data.Backends += n
		}
	}
	data.Totals = counts(totals, filter{})
	data.State = f.query().Get(paramState)
	if !data.Filtered && f.page == 0 && data.Backends > PageSize {
		// Too many to list by default: the backends that need a look.
		f.states = notUp
		data.NotUpOnly = true
	}

	page := max(f.page, 1)
	svcs, matched, err := snapshot(s.opts.Services, s.history, f, (page-1)*PageSize, page*PageSize)
	if err != nil {
		data.NotFound = f.service
	}
	data.Matched = matched
	data.Pages = max((matched+PageSize-1)/PageSize, 1)
	if page > data.Pages {
		// Past the last page (the list shrank since the link was made):
		// show the last one.
		page = data.Pages
		svcs, matched, _ = snapshot(s.opts.Services, s.history, f, (page-1)*PageSize, page*PageSize)
	}
	data.Page = page
	if matched > 0 {
		data.From, data.To = (page-1)*PageSize+1, min(page*PageSize, matched)
	}
	if page > 1 {
		data.PrevURL = pageURL(f, page-1)
	}
	if page < data.Pages {
		data.NextURL = pageURL(f, page+1)
	}

	for _, svc := range svcs {
		ps := pageService{ServiceStatus: svc, URL: pageURL(filter{service: svc.Name}, 0)}
		for _, n := range svc.States {
			ps.Total += n
		}
		ps.Counts = counts(svc.States, filter{service: svc.Name})
		t, ok := s.history.serviceTrend(svc.Name)
		ps.Charts = rowCharts(t, ok)
		for _, b := range svc.Backends {
			pb := pageBackend{BackendStatus: b, Service: svc.Name, ServiceURL: ps.URL}
			for _, n := range b.ConnectErrors {
				pb.ConnectErrorsTotal += n
			}
			if c := b.LastCheck; c != nil {
				pb.Check = c.Result + " " + FormatAge(now.Sub(c.At))
			}
			t, ok := s.history.backendTrend(svc.Name, b.ID)
			pb.Charts = rowCharts(t, ok)
			data.Rows = append(data.Rows, pb)
		}
		data.Services = append(data.Services, ps)
	}
	if s.opts.Explain != nil {
		for _, e := range s.opts.Explain() {
			if !e.Routed || len(e.Warnings) > 0 {
				if len(data.Unrouted) == maxUnrouted {
					data.UnroutedMore++
					continue
				}
				data.Unrouted = append(data.Unrouted, e)
			}
		}
	}
	return data
}

func rowCharts(t trend, ok bool) charts {
	return charts{
		Conns:  sparkline(t, ok, rateConns),
		Bytes:  sparkline(t, ok, rateToBackend, rateToClient),
		Errors: sparkline(t, ok, rateErrors),
	}
}

// counts lists n by state in the page's order, each linking to base's
// backends in that state.
func counts(n map[string]int, base filter) []stateCount {
	out := make([]stateCount, 0, len(allStates))
	for _, st := range allStates {
		f := base
		f.states = []backends.State{st}
		out = append(out, stateCount{State: st.String(), N: n[st.String()], URL: pageURL(f, 0)})
	}
	return out
}

// pageURL is the page's own URL for f at page p; 0 leaves the page out,
// which without a filter means the default list.
func pageURL(f filter, p int) string {
	f.page = p
	q := f.query()
	if len(q) == 0 {
		return "/"
	}
	return "/?" + q.Encode()
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
