package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// chartMax is where bars are cut (and marked) so one outlier does not
// flatten every other bar.
const chartMax = 3.0

// barColors are per target column, in table order (HAProxy is the 1.0 line).
var barColors = []string{"#9e9e9e", "#1565c0", "#64b5f6", "#0d47a1", "#90caf9", "#4fc3f7", "#e65100", "#ffb74d", "#2e7d32", "#81c784", "#6a1b9a", "#ba68c8"}

// chartSVG draws grouped horizontal bars: per table row, each target's
// advantage over HAProxy at its best setting for that row (above 1.0 =
// better than it), with the 1.0 line drawn across.
func chartSVG(res *results) string {
	const (
		labelW = 380
		plotW  = 460
		barH   = 11
		gap    = 12
		top    = 70
	)
	type bar struct {
		targetInfo
		color string
	}
	var bars []bar
	for i, t := range res.columns() {
		if t.family() != "haproxy" {
			bars = append(bars, bar{t, barColors[i%len(barColors)]})
		}
	}
	var rows []rowDef
	for _, r := range res.rows() {
		if !r.Reference {
			rows = append(rows, r)
		}
	}
	groupH := len(bars)*barH + gap
	height := top + len(rows)*groupH + 40
	width := labelW + plotW + 70
	x := func(v float64) float64 { return labelW + math.Min(v, chartMax)/chartMax*plotW }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="18" font-size="14" font-weight="bold">Advantage over the best HAProxy setting per row (bar past 1.0 = better than HAProxy at its best)</text>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="34" fill="#555">%s, medians of %d rounds; HAProxy÷target where lower is better, target÷HAProxy otherwise; cut at %.0f×</text>`+"\n",
		html.EscapeString(res.Date.UTC().Format("2006-01-02")), res.Options.Rounds, chartMax)
	// Legend.
	lx := 10.0
	for _, t := range bars {
		fmt.Fprintf(&b, `<rect x="%.0f" y="44" width="10" height="10" fill="%s"/><text x="%.0f" y="53">%s</text>`+"\n",
			lx, t.color, lx+14, html.EscapeString(t.Label))
		lx += 24 + float64(len(t.Label))*6.2
	}
	// Grid: 0.5× steps, the 1.0 line emphasised.
	for v := 0.0; v <= chartMax+1e-9; v += 0.5 {
		stroke, w := "#ddd", 1
		if v == 1 {
			stroke, w = "#000", 2
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="%d"/>`+"\n",
			x(v), top-6, x(v), height-30, stroke, w)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%.1f×</text>`+"\n", x(v), height-16, v)
	}
	for i, r := range rows {
		y := top + i*groupH
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n",
			labelW-8, y+groupH/2, html.EscapeString(r.Label))
		ref := bestOf(res, r, "haproxy").s
		for j, t := range bars {
			by := y + j*barH
			s := stat(res.Runs, r.Scenario, t.Name, r.Metric)
			adv := 0.0
			if s.N > 0 && ref.N > 0 {
				adv = advantage(s.Median, ref.Median, r.Higher)
			}
			if adv <= 0 {
				continue
			}
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n",
				labelW, by, x(adv)-labelW, barH-2, t.color)
			mark := ""
			if adv > chartMax {
				mark = " ▶"
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="9">%.2f%s</text>`+"\n", x(adv)+3, by+barH-3, adv, mark)
		}
	}
	b.WriteString("</svg>\n")
	return b.String()
}
