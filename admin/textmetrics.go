package admin

import (
	"bufio"
	"cmp"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
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

// FamilyWriter writes one family of the text format (version 0.0.4) byte
// for byte as the registry's encoder does. Its HELP and TYPE lines go out
// with the first sample, so a family without series is left out, as the
// registry leaves it out.
type FamilyWriter struct {
	w       *bufio.Writer
	name    string
	help    string
	typ     dto.MetricType
	started bool
	num     []byte
	errs    []error
}

func newFamilyWriter(w io.Writer) *FamilyWriter {
	return &FamilyWriter{w: bufio.NewWriterSize(w, 32<<10)}
}

// Family starts a family; the samples that follow belong to it.
func (f *FamilyWriter) Family(name, help string, typ dto.MetricType) {
	f.name, f.help, f.typ, f.started = name, help, typ, false
}

// Sample writes one series of the current family. labels are name, value
// pairs in label-name order. A label value that is not UTF-8 leaves the
// series out and is reported, as the registry refuses such a series and
// serves the rest.
func (f *FamilyWriter) Sample(value float64, labels ...string) {
	for i := 1; i < len(labels); i += 2 {
		if !utf8.ValidString(labels[i]) {
			f.errs = append(f.errs, fmt.Errorf("%s: label %s: value %q is not valid UTF-8", f.name, labels[i-1], labels[i]))
			return
		}
	}
	w := f.w
	if !f.started {
		f.started = true
		w.WriteString("# HELP ")
		w.WriteString(f.name)
		w.WriteByte(' ')
		helpEscaper.WriteString(w, f.help)
		w.WriteString("\n# TYPE ")
		w.WriteString(f.name)
		w.WriteByte(' ')
		w.WriteString(strings.ToLower(f.typ.String()))
		w.WriteByte('\n')
	}
	w.WriteString(f.name)
	for i := 0; i+1 < len(labels); i += 2 {
		if i == 0 {
			w.WriteByte('{')
		} else {
			w.WriteByte(',')
		}
		w.WriteString(labels[i])
		w.WriteString(`="`)
		valueEscaper.WriteString(w, labels[i+1])
		w.WriteByte('"')
	}
	if len(labels) > 0 {
		w.WriteByte('}')
	}
	w.WriteByte(' ')
	w.Write(f.appendFloat(value))
	w.WriteByte('\n')
}

// appendFloat formats v as the text encoder does.
func (f *FamilyWriter) appendFloat(v float64) []byte {
	switch {
	case v == 1:
		f.num = append(f.num[:0], '1')
	case v == 0:
		f.num = append(f.num[:0], '0')
	case v == -1:
		f.num = append(f.num[:0], "-1"...)
	case math.IsNaN(v):
		f.num = append(f.num[:0], "NaN"...)
	case math.IsInf(v, 1):
		f.num = append(f.num[:0], "+Inf"...)
	case math.IsInf(v, -1):
		f.num = append(f.num[:0], "-Inf"...)
	default:
		f.num = strconv.AppendFloat(f.num[:0], v, 'g', -1, 64)
	}
	return f.num
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	valueEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

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
	fw := newFamilyWriter(out)
	bw := fw.w
	enc := expfmt.NewEncoder(bw, format)
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
	if len(fw.errs) > 0 {
		h.log.Println("error gathering metrics:", errors.Join(fw.errs...))
	}
	if err := bw.Flush(); err != nil {
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
