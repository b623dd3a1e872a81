package admin

import (
	"bytes"
	"compress/gzip"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tierlb/tierlb/backends"
)

// textAccept is what Prometheus sends when it scrapes the text format.
const textAccept = "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"

// scrape serves one GET /metrics from h.
func scrape(t *testing.T, h http.Handler, accept, encoding string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("GET", "/metrics", nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if encoding != "" {
		req.Header.Set("Accept-Encoding", encoding)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// registryBody is what promhttp serves for small plus the streamers registered
// as ordinary collectors: the body the streamed one must equal.
func registryBody(t *testing.T, small prometheus.Collector, streamers ...Streamer) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	if small != nil {
		reg.MustRegister(small)
	}
	for _, s := range streamers {
		reg.MustRegister(s)
	}
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return scrape(t, h, textAccept, "").Body.String()
}

func streamedHandler(small prometheus.Collector, streamers ...Streamer) *metricsHandler {
	reg := prometheus.NewRegistry()
	if small != nil {
		reg.MustRegister(small)
	}
	return newMetricsHandler(reg, streamers, promLogger{slog.New(slog.NewTextHandler(io.Discard, nil))})
}

// smallFamilies sorts among and around the streamed ones, so the merge is
// checked at both ends and in the middle.
func smallFamilies() prometheus.Collector {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tierlb_backend_connect_duration_x", Help: "between\nlines \\ here"}, []string{"service"})
	c.WithLabelValues("app").Add(3)
	return collectorList{c,
		prometheus.NewGauge(prometheus.GaugeOpts{Name: "a_first", Help: "first"}),
		prometheus.NewGauge(prometheus.GaugeOpts{Name: "z_last", Help: "last"}),
		prometheus.NewHistogram(prometheus.HistogramOpts{Name: "tierlb_backend_m", Help: "a histogram", Buckets: []float64{0.1, 1}}),
	}
}

type collectorList []prometheus.Collector

func (cs collectorList) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range cs {
		c.Describe(ch)
	}
}

func (cs collectorList) Collect(ch chan<- prometheus.Metric) {
	for _, c := range cs {
		c.Collect(ch)
	}
}

// TestStreamedMetricsMatchTheRegistry: /metrics in the text format is byte
// for byte what the registry writes for the same collectors, with backends
// sharing a name across services, label values that need escaping, counts
// in exponent notation, and a backend name that is not UTF-8 (left out by
// both).
func TestStreamedMetricsMatchTheRegistry(t *testing.T) {
	web := newTestSet(t, "web", "10.0.0.1:80", `q"uote\back`+"\nline:1", "ünï:2", "bad\xffname:80", "web-1")
	api := newTestSet(t, "api", "10.0.0.1:80", "web-1", "0.0.0.0:9")
	b := web.Backend("10.0.0.1:80")
	for range 3 {
		b.ConnOpened()
	}
	b.ConnClosed(1234567, 1<<40)
	b.CountConnectError(backends.DialRefused)
	b.CountConnectError(backends.DialTimeout)
	api.Backend("web-1").SetHealth(false, "refused")
	api.Backend("web-1").AddBytes(math.MaxInt64, 1)
	services := ServiceList{{Name: "web", Set: web}, {Name: "api", Set: api}, {Name: "empty"}}

	for _, small := range []prometheus.Collector{nil, smallFamilies()} {
		c := NewCollector(services)
		want := registryBody(t, small, c)
		h := streamedHandler(small, c)
		rec := scrape(t, h, textAccept, "")
		if got := rec.Body.String(); got != want {
			t.Fatalf("streamed body differs from the registry's:\n%s\nwant\n%s", got, want)
		}
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
			t.Errorf("Content-Type %q", ct)
		}
		if strings.Contains(want, "bad") {
			t.Errorf("the non-UTF-8 backend's series are served:\n%s", want)
		}

		// gzip when asked, the same bytes inside.
		rec = scrape(t, h, textAccept, "gzip, deflate")
		if rec.Header().Get("Content-Encoding") != "gzip" {
			t.Fatalf("Content-Encoding %q, want gzip", rec.Header().Get("Content-Encoding"))
		}
		zr, err := gzip.NewReader(rec.Body)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := io.ReadAll(zr)
		if err != nil || string(plain) != want {
			t.Fatalf("gzip body differs (%v):\n%s", err, plain)
		}
	}
}

// TestStreamedMetricsOtherFormats: a protobuf scrape goes through the
// registry, streamed families included.
func TestStreamedMetricsOtherFormats(t *testing.T) {
	set := newTestSet(t, "app", "127.0.0.1:8001")
	h := streamedHandler(smallFamilies(), NewCollector(ServiceList{{Name: "app", Set: set}}))
	rec := scrape(t, h, "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited", "")
	if ct := rec.Header().Get("Content-Type"); !strings.Contains(ct, "protobuf") {
		t.Fatalf("Content-Type %q, want protobuf", ct)
	}
	if !bytes.Contains(rec.Body.Bytes(), []byte("tierlb_backend_up")) || !bytes.Contains(rec.Body.Bytes(), []byte("z_last")) {
		t.Fatalf("protobuf body lacks a family: %q", rec.Body.String())
	}
}

// TestStreamedMetricsNoBackends: families without series are left out, as
// the registry leaves them out.
func TestStreamedMetricsNoBackends(t *testing.T) {
	c := NewCollector(ServiceList{{Name: "empty", Set: newTestSet(t, "empty")}})
	want := registryBody(t, smallFamilies(), c)
	if got := scrape(t, streamedHandler(smallFamilies(), c), "", "").Body.String(); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}
