// Package promtext writes Prometheus families in the text format (version
// 0.0.4) straight from their source, a series at a time, byte for byte as
// the registry's encoder writes them. A collector with a series per
// service or per backend writes through a FamilyWriter for the text
// scrapes of /metrics (see admin.Streamer) instead of building a
// prometheus.Metric and a dto.Metric per series:
//
//	fw := promtext.NewFamilyWriter(out)
//	fw.Family("tierlb_connections_accepted_total", help, dto.MetricType_COUNTER)
//	fw.Sample(42, "service", "web")
//	err := fw.Flush()
package promtext

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	dto "github.com/prometheus/client_model/go"
)

// FamilyWriter writes families of the text format. Its HELP and TYPE lines
// go out with a family's first series, so a family without series is left
// out, as the registry leaves it out. Metric and label names are the
// caller's constants and must be valid; label values are escaped.
type FamilyWriter struct {
	w       *bufio.Writer
	name    string
	help    string
	typ     dto.MetricType
	started bool
	num, le []byte // formatting room, reused
	errs    []error
}

// NewFamilyWriter buffers what it writes to w; Flush sends the rest.
func NewFamilyWriter(w io.Writer) *FamilyWriter {
	return &FamilyWriter{w: bufio.NewWriterSize(w, 32<<10)}
}

// Buffer is the writer's buffer, for an encoder that writes whole families
// between the streamed ones.
func (f *FamilyWriter) Buffer() *bufio.Writer { return f.w }

// Flush writes out what is buffered.
func (f *FamilyWriter) Flush() error { return f.w.Flush() }

// Err reports the series left out so far (label values that are not
// UTF-8), nil if none.
func (f *FamilyWriter) Err() error { return errors.Join(f.errs...) }

// Family starts a family; the series that follow belong to it.
func (f *FamilyWriter) Family(name, help string, typ dto.MetricType) {
	f.name, f.help, f.typ, f.started = name, help, typ, false
}

// Sample writes one series of the current family, a counter or gauge.
// labels are name, value pairs in label-name order. A label value that is
// not UTF-8 leaves the series out and is reported (Err), as the registry
// refuses such a series and serves the rest.
func (f *FamilyWriter) Sample(value float64, labels ...string) {
	if !f.valid(labels) {
		return
	}
	f.header()
	f.line("", labels, nil, value)
}

// Histogram writes one series of the current family, a histogram:
// cumulative[i] observations at most bounds[i], count in all, and their
// sum. labels are as for Sample; the registry writes le after them, and
// the +Inf bucket (count) after the bounds.
func (f *FamilyWriter) Histogram(bounds []float64, cumulative []uint64, count uint64, sum float64, labels ...string) {
	if !f.valid(labels) {
		return
	}
	f.header()
	for i, ub := range bounds {
		f.le = appendFloat(f.le[:0], ub)
		f.line("_bucket", labels, f.le, float64(cumulative[i]))
	}
	f.le = appendFloat(f.le[:0], math.Inf(1))
	f.line("_bucket", labels, f.le, float64(count))
	f.line("_sum", labels, nil, sum)
	f.line("_count", labels, nil, float64(count))
}

// valid reports whether every label value is UTF-8, recording the error
// of the first that is not.
func (f *FamilyWriter) valid(labels []string) bool {
	for i := 1; i < len(labels); i += 2 {
		if !utf8.ValidString(labels[i]) {
			f.errs = append(f.errs, fmt.Errorf("%s: label %s: value %q is not valid UTF-8", f.name, labels[i-1], labels[i]))
			return false
		}
	}
	return true
}

// header writes the family's HELP and TYPE lines before its first series.
func (f *FamilyWriter) header() {
	if f.started {
		return
	}
	f.started = true
	w := f.w
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

// line writes one sample line: the family's name with suffix, labels,
// then le unless it is nil, and value.
func (f *FamilyWriter) line(suffix string, labels []string, le []byte, value float64) {
	w := f.w
	w.WriteString(f.name)
	w.WriteString(suffix)
	sep := byte('{')
	for i := 0; i+1 < len(labels); i += 2 {
		w.WriteByte(sep)
		sep = ','
		w.WriteString(labels[i])
		w.WriteString(`="`)
		valueEscaper.WriteString(w, labels[i+1])
		w.WriteByte('"')
	}
	if le != nil {
		w.WriteByte(sep)
		sep = ','
		w.WriteString(`le="`)
		w.Write(le)
		w.WriteByte('"')
	}
	if sep == ',' {
		w.WriteByte('}')
	}
	w.WriteByte(' ')
	f.num = appendFloat(f.num[:0], value)
	w.Write(f.num)
	w.WriteByte('\n')
}

// appendFloat formats v as the text encoder does.
func appendFloat(dst []byte, v float64) []byte {
	switch {
	case v == 1:
		return append(dst, '1')
	case v == 0:
		return append(dst, '0')
	case v == -1:
		return append(dst, "-1"...)
	case math.IsNaN(v):
		return append(dst, "NaN"...)
	case math.IsInf(v, 1):
		return append(dst, "+Inf"...)
	case math.IsInf(v, -1):
		return append(dst, "-Inf"...)
	}
	return strconv.AppendFloat(dst, v, 'g', -1, 64)
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	valueEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)
