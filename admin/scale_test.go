package admin

import (
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tierlb/tierlb/backends"
)

// scaleServices returns nServices services of perService static backends
// each (svc-000/10.0.0.1:8080, ...), with a few backends down, draining
// and in maintenance, as an operator of a large setup sees them.
func scaleServices(t testing.TB, nServices, perService int) ServiceList {
	t.Helper()
	out := make(ServiceList, 0, nServices)
	n := 0
	for s := range nServices {
		name := fmt.Sprintf("svc-%03d", s)
		set := backends.NewSet(name, backends.RoundRobin, backends.SetOptions{})
		t.Cleanup(set.Close)
		specs := make([]backends.Spec, perService)
		for i := range specs {
			n++
			addr := fmt.Sprintf("10.%d.%d.%d:8080", n>>16&255, n>>8&255, n&255)
			specs[i] = backends.Spec{ID: fmt.Sprintf("%s-web-%d", name, i+1), Address: addr, Network: "tier1", Weight: 1}
		}
		set.Update(specs)
		for i, b := range set.Backends() {
			switch k := s*perService + i; {
			case k%997 == 5:
				b.SetHealth(false, "3 checks failed: dial tcp "+b.Address()+": connect: connection refused")
			case k%1999 == 7:
				b.SetAdminState(backends.StateDraining)
			case k%4999 == 11:
				b.SetAdminState(backends.StateMaint)
			}
		}
		out = append(out, ServiceInfo{Name: name, Listen: fmt.Sprintf("0.0.0.0:%d", 20000+s), Set: set})
	}
	return out
}

// playTraffic moves every backend's counters as samples-1 intervals of
// traffic would, sampling h after each on a fake clock: a wave per
// backend, a burst of connect errors on some, nothing on the down ones.
func playTraffic(h *History, services ServiceList, samples int) {
	at := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	h.sample(at)
	for k := 1; k < samples; k++ {
		i := 0
		for _, info := range services {
			for _, b := range info.Set.Backends() {
				i++
				if st, _ := b.State(); st == backends.StateDown || st == backends.StateMaint {
					continue
				}
				wave := 1 + 0.6*math.Sin(float64(k)/9+float64(i%31))
				conns := int(float64(1+i%17) * wave)
				if k == 1 {
					for range i % 7 {
						b.ConnOpened() // still open at the end
					}
				}
				for range conns {
					b.ConnOpened()
					b.ConnClosed(0, 0)
				}
				b.AddBytes(int64(conns*700), int64(float64(conns)*12*1024*(2-wave)))
				if i%50 == 3 && k > 40 && k < 55 {
					b.CountConnectError(backends.DialRefused)
				}
			}
		}
		h.sample(at.Add(time.Duration(k) * HistoryInterval))
	}
}

// maxPageBytes bounds the status page at 10,000 backends with a full
// history: a services table of 100 rows and one page of backends.
const maxPageBytes = 1 << 20

// TestStatusPageAtScale renders the page over 10,000 backends with 15
// minutes of history: one page of backends, the services table, state
// totals, pagination and filters, under maxPageBytes.
func TestStatusPageAtScale(t *testing.T) {
	services := scaleServices(t, 100, 100)
	s := New(Options{Services: services})
	playTraffic(s.history, services, HistorySlots+1)
	h := s.Handler()

	get := func(path string) string {
		t.Helper()
		start := time.Now()
		rec := httptestRecord(h, "GET", path, "127.0.0.1:9090", nil)
		if rec.Code != 200 {
			t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
		}
		t.Logf("GET %s: %d bytes in %v", path, rec.Body.Len(), time.Since(start).Round(time.Millisecond))
		if rec.Body.Len() > maxPageBytes {
			t.Errorf("GET %s: %d bytes, over the bound of %d", path, rec.Body.Len(), maxPageBytes)
		}
		return rec.Body.String()
	}
	tests := []struct {
		name, path  string
		rows        int
		services    int
		contains    []string
		notContains []string
	}{
		{name: "default: those not up", path: "/", rows: 11 + 5 + 2, services: 100, contains: []string{
			"10000 backends:", `<a class="count count-down" href="/?state=down">11 down</a>`,
			`<h2>Backends not up</h2>`, `<a href="/?page=1">list them all</a>`, `1–18 of 18 selected · page 1 of 1`,
			"last 15 min, max ",
		}, notContains: []string{`rel="prev"`, `rel="next"`}},
		{name: "all", path: "/?page=1", rows: PageSize, services: 100, contains: []string{
			`1–100 of 10000 · page 1 of 100`, `<a href="/?page=2" rel="next">next ›</a>`,
		}, notContains: []string{`rel="prev"`, "list them all"}},
		{name: "last page", path: "/?page=100", rows: PageSize, services: 100,
			contains: []string{`9901–10000 of 10000 · page 100 of 100`, `<a href="/?page=99" rel="prev">`}, notContains: []string{`rel="next"`}},
		{name: "past the end", path: "/?page=1000", rows: PageSize, services: 100, contains: []string{`page 100 of 100`}},
		{name: "one service", path: "/?service=svc-042", rows: 100, services: 1,
			contains: []string{`1–100 of 100 selected · page 1 of 1`, `<option selected>svc-042</option>`}},
		{name: "down", path: "/?state=down", rows: 11, services: 100, contains: []string{`1–11 of 11 selected`}},
		{name: "not up", path: "/?state=down,draining,maint", rows: 11 + 5 + 2, services: 100,
			contains: []string{`<option value="down,draining,maint" selected>not up</option>`}},
		{name: "name", path: "/?backend=SVC-007-WEB-1", rows: 12, services: 100}, // web-1, web-10 ... web-19, web-100
		{name: "unknown service", path: "/?service=nope", rows: 0, services: 0, contains: []string{"no service named nope", "no backend matches the filter"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page := get(tt.path)
			if got := strings.Count(page, `<tr class="backend"`); got != tt.rows {
				t.Errorf("%d backend rows, want %d", got, tt.rows)
			}
			if got := strings.Count(page, `<tr class="service"`); got != tt.services {
				t.Errorf("%d service rows, want %d", got, tt.services)
			}
			for _, want := range tt.contains {
				if !strings.Contains(page, want) {
					t.Errorf("page lacks %s", want)
				}
			}
			for _, unwanted := range tt.notContains {
				if strings.Contains(page, unwanted) {
					t.Errorf("page has %s", unwanted)
				}
			}
		})
	}
}

func BenchmarkStatusPage10k(b *testing.B) {
	services := scaleServices(b, 100, 100)
	s := New(Options{Services: services})
	playTraffic(s.history, services, HistorySlots+1)
	h := s.Handler()
	b.ReportAllocs()
	for b.Loop() {
		rec := httptestRecord(h, "GET", "/", "127.0.0.1:9090", nil)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
		b.SetBytes(int64(rec.Body.Len()))
	}
}

// BenchmarkScrape10k is /metrics over 10,000 backends' series: what a
// Prometheus scrape costs.
func BenchmarkScrape10k(b *testing.B) {
	services := scaleServices(b, 100, 100)
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(services))
	h := New(Options{Services: services, Gatherer: reg}).Handler()
	b.ReportAllocs()
	for b.Loop() {
		rec := httptestRecord(h, "GET", "/metrics", "127.0.0.1:9090", nil)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
		b.SetBytes(int64(rec.Body.Len()))
	}
}

// BenchmarkStreamedScrape10k is /metrics over 10,000 backends as tierlb
// serves it: the per-backend families streamed, the body discarded.
func BenchmarkStreamedScrape10k(b *testing.B) {
	services := scaleServices(b, 100, 100)
	h := New(Options{Services: services}).Handler()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Host = "127.0.0.1:9090"
	req.Header.Set("Accept", textAccept)
	b.ReportAllocs()
	for b.Loop() {
		w := &discardResponse{header: http.Header{}}
		h.ServeHTTP(w, req)
		if w.code != 0 && w.code != 200 {
			b.Fatal(w.code)
		}
		b.SetBytes(w.n)
	}
}

// discardResponse is a ResponseWriter that counts the body and keeps none
// of it, so that a benchmark's allocations are the handler's.
type discardResponse struct {
	header http.Header
	code   int
	n      int64
}

func (w *discardResponse) Header() http.Header  { return w.header }
func (w *discardResponse) WriteHeader(code int) { w.code = code }
func (w *discardResponse) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

// TestScrapeMemory bounds what one streamed scrape of 10,000 backends
// allocates, all of it garbage once written: the GC lets the heap grow by
// half of what is live when it runs, so what a scrape holds sets the RSS
// a large tierlb keeps. One sample per (service, backend) of 104 bytes
// (117 a backend measured, with the sets' listings).
func TestScrapeMemory(t *testing.T) {
	services := scaleServices(t, 100, 100)
	h := New(Options{Services: services}).Handler()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Host = "127.0.0.1:9090"
	req.Header.Set("Accept", textAccept)
	scrape := func() int64 {
		w := &discardResponse{header: http.Header{}}
		h.ServeHTTP(w, req)
		return w.n
	}
	scrape() // the first scrape sizes what is kept across scrapes
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	n := scrape()
	runtime.ReadMemStats(&after)
	per := float64(after.TotalAlloc-before.TotalAlloc) / 10_000
	t.Logf("a scrape of 10,000 backends (%.1f MB) allocates %.0f bytes a backend", float64(n)/1e6, per)
	if n < 10_000*500 {
		t.Fatalf("the scrape wrote %d bytes, too few for 10,000 backends' series", n)
	}
	if per > 150 {
		t.Errorf("%.0f bytes allocated per backend, want at most 150", per)
	}
}
