package testkit

import (
	"bytes"
	"slices"
	"testing"

	"github.com/tierlb/tierlb/internal/promtext"
)

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
