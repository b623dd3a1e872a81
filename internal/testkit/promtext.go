package testkit

import (
	"bytes"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/tierlb/tierlb/internal/promtext"
)

// Gathered is the text the registry's own encoder writes for what g
// gathers: what a streamed family is held to.
func Gathered(t testing.TB, g prometheus.Gatherer) string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// Streamed is the text /metrics writes for a streamed collector's
// families (admin.Streamer) alone: every family of one snapshot, in name
// order. A series left out (a label value that is not UTF-8) fails t.
func Streamed(t testing.TB, families []string, snapshot func() func(*promtext.FamilyWriter, string)) string {
	t.Helper()
	var b bytes.Buffer
	fw := promtext.NewFamilyWriter(&b)
	write := snapshot()
	for _, name := range slices.Sorted(slices.Values(families)) {
		write(fw, name)
	}
	if err := fw.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := fw.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
