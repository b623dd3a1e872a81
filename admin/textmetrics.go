package admin

import (
	"cmp"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/tierlb/tierlb/internal/promtext"
)

// Streamer is a collector whose families the text exposition of /metrics
// writes straight from their source, a series at a time. Gathering goes
// through a prometheus.Metric and then a dto.Metric per series and holds
// every one of them until the response is written: at 10,000 backends
// (100,000 series) that was 40 MB of heap a scrape, which Go then kept
// resident, and most of the scrape's time. A Streamer still collects as
// any collector does, for the formats only the registry writes (protobuf).
type Streamer interface {
	prometheus.Collector
	// Families names the families it writes.
	Families() []string
	// Snapshot reads the source once, for one scrape; the func it returns
	// writes family name of that reading through w, series in the order
	// the registry sorts them (by label values, labels by name).
	Snapshot() func(w *FamilyWriter, name string)
}

// FamilyWriter writes the families of a Streamer, byte for byte as the
// registry's encoder does.
type FamilyWriter = promtext.FamilyWriter

// metricsHandler serves /metrics. A request for the text format, which
// Prometheus asks for unless told to scrape protobuf, gets the gathered
// families and the streamed ones merged in name order; any other format
// goes to promhttp over both.
type metricsHandler struct {
	small     prometheus.Gatherer
	streamers []Streamer
	full      http.Handler
	log       promLogger
}

// newMetricsHandler serves small and streamers. Streamers that clash
// (the same family twice) are a bug of the caller's: the registry behind
// the other formats refuses the second, which is logged.
func newMetricsHandler(small prometheus.Gatherer, streamers []Streamer, log promLogger) *metricsHandler {
	h := &metricsHandler{small: small, streamers: streamers, log: log}
	gatherers := prometheus.Gatherers{small}
	if len(streamers) > 0 {
		reg := prometheus.NewRegistry()
		for _, s := range streamers {
			if err := reg.Register(s); err != nil {
				log.Println(fmt.Sprintf("streamed families %v:", s.Families()), err)
			}
		}
		gatherers = append(gatherers, reg)
	}
	h.full = promhttp.HandlerFor(gatherers, promhttp.HandlerOpts{ErrorLog: log, ErrorHandling: promhttp.ContinueOnError})
	return h
}

func (h *metricsHandler) ServeHTTP(rsp http.ResponseWriter, req *http.Request) {
	format := expfmt.NegotiateAccept(req.Header, expfmt.DefaultAcceptedFormats()...)
	if format.FormatType() != expfmt.TypeTextPlain || len(h.streamers) == 0 {
		h.full.ServeHTTP(rsp, req)
		return
	}
	mfs, err := h.small.Gather()
	if err != nil {
		h.log.Println("error gathering metrics:", err)
	}
	type family struct {
		name string
		mf   *dto.MetricFamily
		s    Streamer
	}
	all := make([]family, 0, len(mfs)+8)
	for _, mf := range mfs {
		all = append(all, family{name: mf.GetName(), mf: mf})
	}
	for _, s := range h.streamers {
		for _, name := range s.Families() {
			all = append(all, family{name: name, s: s})
		}
	}
	slices.SortStableFunc(all, func(a, b family) int { return cmp.Compare(a.name, b.name) })

	rsp.Header().Add("Vary", "Accept")
	rsp.Header().Add("Vary", "Accept-Encoding")
	rsp.Header().Set("Content-Type", string(format))
	var out io.Writer = rsp
	if acceptsGzip(req.Header.Get("Accept-Encoding")) {
		rsp.Header().Set("Content-Encoding", "gzip")
		gz := gzip.NewWriter(rsp)
		defer gz.Close()
		out = gz
	}
	fw := promtext.NewFamilyWriter(out)
	enc := expfmt.NewEncoder(fw.Buffer(), format)
	snapshots := make(map[Streamer]func(*FamilyWriter, string), len(h.streamers))
	for _, f := range all {
		if f.mf != nil {
			if err := enc.Encode(f.mf); err != nil {
				h.log.Println("error encoding and sending metric family:", err)
				return
			}
			continue
		}
		write := snapshots[f.s]
		if write == nil {
			write = f.s.Snapshot()
			snapshots[f.s] = write
		}
		write(fw, f.name)
	}
	if err := fw.Err(); err != nil {
		h.log.Println("error gathering metrics:", err)
	}
	if err := fw.Flush(); err != nil {
		h.log.Println("error encoding and sending metric family:", err)
	}
}

// acceptsGzip reads an Accept-Encoding header: gzip (or *) listed without
// q=0.
func acceptsGzip(header string) bool {
	for part := range strings.SplitSeq(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		coding = strings.ToLower(strings.TrimSpace(coding))
		if coding != "gzip" && coding != "*" {
			continue
		}
		q := 1.0
		for p := range strings.SplitSeq(params, ";") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(p), "q="); ok {
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					q = f
				}
			}
		}
		if q > 0 {
			return true
		}
	}
	return false
}
