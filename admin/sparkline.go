package admin

import (
	"fmt"
	"html"
	"strconv"
	"strings"

	g "maragu.dev/gomponents"
)

// Sparkline geometry: one pixel per sample across, so a chart is the whole
// history at a glance; 18 pixels high fits a table row.
const (
	sparkWidth  = HistorySlots
	sparkHeight = 18
)

// sparkColours are the lines' colours by rate, chosen apart from the state
// badges' green and red, which mean up and down on this page.
var sparkColours = [numRates]string{
	rateConns:     "#0969da",
	rateToBackend: "#8250df",
	rateToClient:  "#bf3989",
	rateErrors:    "#bc4c00",
}

// sparkLabels name the rates in a chart's title.
var sparkLabels = [numRates]string{
	rateConns:     "connections",
	rateToBackend: "to backend",
	rateToClient:  "to client",
	rateErrors:    "errors",
}

// sparkline draws the rates of t named by which as one inline SVG, each
// line scaled to its own maximum over the window, which the title states.
// It is written as one string rather than built node by node because it
// is numbers only, there are hundreds of them on a page, and its one text,
// the title, is escaped here.
func sparkline(t trend, ok bool, which ...int) g.Node {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="spark" width="%d" height="%d" viewBox="0 0 %d %d" role="img">`,
		sparkWidth, sparkHeight, sparkWidth, sparkHeight)
	if !ok {
		b.WriteString(`<title>no samples yet</title></svg>`)
		return g.Raw(b.String())
	}
	peaks := make([]float32, len(which))
	title := make([]string, len(which))
	for k, w := range which {
		for i := t.first; i < HistorySlots; i++ {
			peaks[k] = max(peaks[k], t.points[i][w])
		}
		if w == rateToBackend || w == rateToClient {
			title[k] = FormatByteRate(float64(peaks[k])) + " " + sparkLabels[w]
		} else {
			title[k] = FormatRate(float64(peaks[k])) + " " + sparkLabels[w]
		}
	}
	b.WriteString("<title>" + html.EscapeString("last 15 min, max "+strings.Join(title, ", ")) + "</title>")
	for k, w := range which {
		fmt.Fprintf(&b, `<path fill="none" stroke="%s" stroke-width="1.5" d="`, sparkColours[w])
		writePath(&b, t, w, peaks[k])
		b.WriteString(`"/>`)
	}
	b.WriteString("</svg>")
	return g.Raw(b.String())
}

// FormatRate formats a per-second rate in three significant figures at
// most: 0/s, 0.25/s, 12.3/s, 456/s, 7.89k/s, 1.2M/s.
func FormatRate(v float64) string {
	switch {
	case v <= 0:
		return "0/s"
	case v < 0.01:
		return "<0.01/s"
	}
	const units = "kMGTPE"
	unit := ""
	for i := 0; i < len(units); i++ {
		if r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 3, 64), 64); r < 1000 {
			break
		}
		v /= 1000
		unit = units[i : i+1]
	}
	return strconv.FormatFloat(v, 'g', 3, 64) + unit + "/s"
}

// FormatByteRate formats bytes per second in binary units, as FormatBytes.
func FormatByteRate(v float64) string {
	if v <= 0 {
		return "0 B/s"
	}
	return FormatBytes(uint64(v+0.5)) + "/s"
}

// writePath writes rate w of t as path data in whole pixels, relative
// steps of one pixel across, a flat run as one h: a page shows hundreds of
// these, and most runs of an idle or steady series are flat.
func writePath(b *strings.Builder, t trend, w int, peak float32) {
	y := func(i int) int {
		if peak <= 0 {
			return sparkHeight - 1
		}
		return sparkHeight - 1 - int(t.points[i][w]/peak*(sparkHeight-2)+0.5)
	}
	prev := y(t.first)
	fmt.Fprintf(b, "M%d %d", t.first, prev)
	flat := 0
	for i := t.first + 1; i < HistorySlots; i++ {
		cur := y(i)
		if cur == prev {
			flat++
			continue
		}
		if flat > 0 {
			b.WriteString("h" + strconv.Itoa(flat))
			flat = 0
		}
		b.WriteString("l1")
		if cur > prev {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.Itoa(cur - prev))
		prev = cur
	}
	if flat > 0 || t.first == HistorySlots-1 {
		// A lone point is drawn as a one-pixel dash.
		b.WriteString("h" + strconv.Itoa(max(flat, 1)))
	}
}
