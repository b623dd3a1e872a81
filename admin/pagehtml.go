package admin

import (
	"cmp"
	_ "embed"
	"io"
	"strconv"
	"strings"

	g "maragu.dev/gomponents"
	h "maragu.dev/gomponents/html"
)

// The status page is built with gomponents rather than html/template. A
// binary that can execute a text/template keeps every exported method of
// every type it links, since a template may call any of them by name: for
// tierlb that was 3.4 MB of code and read-only data, most of the file pages
// that made its RSS larger than HAProxy's with 200 services (see The data
// path in the README). gomponents escapes every text and attribute value it is
// given; g.Raw is used only for the style sheet and the sparklines, which
// escape their one string themselves.

//go:embed page.css
var pageStyle string

// renderPage writes the HTML status page for d.
func renderPage(w io.Writer, d pageData) error {
	return h.Doctype(h.HTML(h.Lang("en"),
		h.Head(
			h.Meta(h.Charset("utf-8")),
			h.Meta(g.Attr("http-equiv", "refresh"), h.Content("5")),
			h.Meta(h.Name("viewport"), h.Content("width=device-width, initial-scale=1")),
			h.TitleEl(g.Text("tierlb status")),
			h.StyleEl(g.Raw("\n"+pageStyle)),
		),
		h.Body(
			h.H1(g.Text("tierlb status")),
			h.Div(h.Class("meta"),
				g.Text(d.Now.Format("2006-01-02 15:04:05 MST")+" · refreshes every 5s · "+
					strconv.Itoa(len(d.ServiceNames))+" services · "+strconv.Itoa(d.Backends)+" backends:"),
				g.Map(d.Totals, func(c stateCount) g.Node {
					return g.Group{g.Text(" "), countLink(c, strconv.Itoa(c.N)+" "+c.State)}
				}),
			),
			filterForm(d),
			g.If(d.NotFound != "", h.P(h.Class("empty"), g.Text("no service named "+d.NotFound))),
			h.H2(g.Text("Services")),
			h.Div(h.Class("meta key"),
				g.Text("rates over the last "+strconv.Itoa(d.HistoryIntervalSecs)+" s; charts: last "+
					strconv.Itoa(d.HistoryMinutes)+" min"),
				chartKey(rateConns, "connections"), chartKey(rateToBackend, "to backend"),
				chartKey(rateToClient, "to client"), chartKey(rateErrors, "errors (failed dials, refused connections)"),
			),
			servicesTable(d),
			h.H2(g.Text("Backends"), g.If(d.NotUpOnly, g.Text(" not up"))),
			g.If(d.NotUpOnly, h.Div(h.Class("meta"),
				g.Text(strconv.Itoa(d.Backends)+" backends are too many to list at once: here are those not up. "+
					"Pick a service, a state or a name above, or "),
				h.A(h.Href("/?page=1"), g.Text("list them all")),
				g.Text(", "+strconv.Itoa(d.PageSize)+" a page."),
			)),
			backendsTable(d),
			g.If(d.Explain, unroutedTable(d)),
			h.Footer(
				h.A(h.Href("/api/v1/services"), g.Text("/api/v1/services")), g.Text(" · "),
				h.A(h.Href("/api/v1/explain"), g.Text("/api/v1/explain")), g.Text(" · "),
				h.A(h.Href("/metrics"), g.Text("/metrics")),
				g.If(d.Pprof, g.Group{g.Text(" · "), h.A(h.Href("/debug/pprof/"), g.Text("/debug/pprof/"))}),
			),
		),
	)).Render(w)
}

// countLink links to the backends in c's state.
func countLink(c stateCount, text string) g.Node {
	return h.A(h.Class("count count-"+c.State), h.Href(c.URL), g.Text(text))
}

// chartKey is one entry of the charts' key: a swatch of the rate's colour.
func chartKey(rate int, label string) g.Node {
	return g.Group{h.I(h.Style("background:" + sparkColours[rate])), g.Text(label)}
}

func filterForm(d pageData) g.Node {
	return h.Form(h.Class("filter"), h.Method("get"), h.Action("/"),
		h.Label(g.Text("Service "), h.Select(h.Name("service"),
			h.Option(h.Value(""), g.Text("all")),
			g.Map(d.ServiceNames, func(name string) g.Node {
				return h.Option(g.If(name == d.Service, h.Selected()), g.Text(name))
			}),
		)),
		h.Label(g.Text("State "), h.Select(h.Name("state"),
			h.Option(h.Value(""), g.Text("any")),
			g.Map(d.StateChoices, func(st string) g.Node {
				label := st
				if st == "down,draining,maint" {
					label = "not up"
				}
				return h.Option(h.Value(st), g.If(st == d.State, h.Selected()), g.Text(label))
			}),
		)),
		h.Label(g.Text("Backend "), h.Input(h.Name("backend"), h.Value(d.Backend),
			h.Placeholder("name or address contains"), g.Attr("size", "24"))),
		h.Button(h.Type("submit"), g.Text("Filter")),
		g.If(d.Filtered, g.Group{g.Text(" "), h.A(h.Href("/"), g.Text("clear"))}),
	)
}

// headers are a table's header cells; a name starting with '#' is a
// number column.
func headers(names ...string) g.Node {
	cells := make(g.Group, 0, len(names))
	for _, n := range names {
		if strings.HasPrefix(n, "#") {
			cells = append(cells, h.Th(h.Class("num"), g.Text(n[1:])))
		} else {
			cells = append(cells, h.Th(g.Text(n)))
		}
	}
	return cells
}

func numCell(s string) g.Node { return h.Td(h.Class("num"), g.Text(s)) }

// rateCell shows a rate, "-" until there are two samples, and a chart.
func rateCell(r *Rates, format func(*Rates) string, chart g.Node) g.Node {
	text := "-"
	if r != nil {
		text = format(r)
	}
	return h.Td(h.Class("rate"), h.Span(g.Text(text)), chart)
}

func connsRate(r *Rates) string     { return FormatRate(r.ConnsPerS) }
func errorsRate(r *Rates) string    { return FormatRate(r.ErrorsPerS) }
func toBackend(r *Rates) string     { return FormatByteRate(r.BytesPerS.ToBackend) }
func toClient(r *Rates) string      { return FormatByteRate(r.BytesPerS.ToClient) }
func bothWays(r *Rates) string      { return toBackend(r) + " · " + toClient(r) }
func sniList(names []string) string { return strings.Join(names, ", ") }

func servicesTable(d pageData) g.Node {
	if len(d.Services) == 0 {
		return h.P(h.Class("empty"), g.Text("no services"))
	}
	return h.Table(h.Class("services"),
		h.THead(h.Tr(headers("Service", "Listen", "Balance", "#Backends", "#Up", "#Down", "#Draining", "#Maint",
			"#Active", "#Conns/s", "#To backend/s", "#To client/s", "#Errors/s"))),
		h.TBody(g.Map(d.Services, func(s pageService) g.Node {
			listen := s.Listen
			if s.Protocol == "udp" {
				listen += "/udp"
			}
			if len(s.SNI) > 0 {
				listen += " · sni " + sniList(s.SNI)
			}
			return h.Tr(h.Class("service"), h.Data("service", s.Name),
				h.Td(h.A(h.Href(s.URL), g.Text(s.Name))),
				h.Td(g.Text(listen)),
				h.Td(g.Text(s.Balance)),
				numCell(strconv.Itoa(s.Total)),
				g.Map(s.Counts, func(c stateCount) g.Node {
					if c.N == 0 {
						return h.Td(h.Class("num"), h.Span(h.Class("zero"), g.Text("0")))
					}
					return h.Td(h.Class("num"), countLink(c, strconv.Itoa(c.N)))
				}),
				numCell(strconv.FormatInt(s.ActiveConnections, 10)),
				rateCell(s.Rates, connsRate, s.Charts.Conns),
				rateCell(s.Rates, toBackend, nil),
				rateCell(s.Rates, toClient, s.Charts.Bytes),
				rateCell(s.Rates, errorsRate, s.Charts.Errors),
			)
		})),
	)
}

// pager is the "page 2 of 5 · previous · next" links.
func pager(d pageData) g.Node {
	return g.Group{
		g.If(d.PrevURL != "", g.Group{g.Text(" · "), h.A(h.Href(d.PrevURL), h.Rel("prev"), g.Text("‹ previous"))}),
		g.If(d.NextURL != "", g.Group{g.Text(" · "), h.A(h.Href(d.NextURL), h.Rel("next"), g.Text("next ›"))}),
	}
}

func backendsTable(d pageData) g.Node {
	if len(d.Rows) == 0 {
		text := "no backends"
		switch {
		case d.NotUpOnly:
			text = "every backend is up"
		case d.Filtered:
			text = "no backend matches the filter"
		}
		return h.P(h.Class("empty"), g.Text(text))
	}
	selected := ""
	if d.Filtered || d.NotUpOnly {
		selected = " selected"
	}
	pages := "page " + strconv.Itoa(d.Page) + " of " + strconv.Itoa(d.Pages)
	return g.Group{
		h.Div(h.Class("pages"),
			g.Text(strconv.Itoa(d.From)+"–"+strconv.Itoa(d.To)+" of "+strconv.Itoa(d.Matched)+selected+" · "+pages),
			pager(d)),
		h.Table(h.Class("backends"),
			h.THead(h.Tr(
				g.If(d.Service == "", h.Th(g.Text("Service"))),
				headers("Backend", "Address", "State", "#Weight", "#Prio", "#Active", "#Total", "#Conns/s",
					"#To backend", "#To client", "#Bytes/s in · out"),
				h.Th(h.Class("num"), h.Title("failed dials since the backend appeared"), g.Text("Dial errors")),
				headers("#Errors/s", "Last check", "Reason"),
			)),
			h.TBody(g.Map(d.Rows, func(b pageBackend) g.Node { return backendRow(d, b) })),
		),
		g.If(d.PrevURL != "" || d.NextURL != "", h.Div(h.Class("pages"), g.Text(pages), pager(d))),
	}
}

func backendRow(d pageData, b pageBackend) g.Node {
	check := h.Td(h.Class("check"), g.Text("-"))
	if c := b.LastCheck; c != nil {
		class := "check"
		if c.Result != "ok" {
			class += " fail"
		}
		check = h.Td(h.Class(class), h.Title(c.Reason), g.Text(b.Check))
	}
	return h.Tr(h.Class("backend"), h.Data("service", b.Service), h.Data("backend", b.ID), h.Data("state", b.State),
		g.If(d.Service == "", h.Td(h.A(h.Href(b.ServiceURL), g.Text(b.Service)))),
		h.Td(g.Text(b.ID)),
		h.Td(g.Text(b.Address), g.If(b.Network != "", g.Group{g.Text(" "), h.Span(h.Class("meta"), g.Text(b.Network))})),
		h.Td(h.Span(h.Class("state state-"+b.State), g.Text(b.State))),
		numCell(strconv.Itoa(b.Weight)),
		numCell(strconv.Itoa(b.Priority)),
		numCell(strconv.FormatInt(b.ActiveConnections, 10)),
		numCell(strconv.FormatUint(b.TotalConnections, 10)),
		rateCell(b.Rates, connsRate, b.Charts.Conns),
		numCell(FormatBytes(b.BytesToBackend)),
		numCell(FormatBytes(b.BytesToClient)),
		rateCell(b.Rates, bothWays, b.Charts.Bytes),
		numCell(strconv.FormatUint(b.ConnectErrorsTotal, 10)),
		rateCell(b.Rates, errorsRate, b.Charts.Errors),
		check,
		h.Td(h.Class("reason"), g.Text(b.Reason)),
	)
}

func unroutedTable(d pageData) g.Node {
	if len(d.Unrouted) == 0 {
		return g.Group{
			h.H2(g.Text("Containers not routed or with warnings")),
			h.P(h.Class("empty"), g.Text("every container seen is routed, without warnings")),
		}
	}
	return g.Group{
		h.H2(g.Text("Containers not routed or with warnings")),
		h.Table(
			h.THead(h.Tr(headers("Container", "Service", "Routed", "Reason", "Warnings"))),
			h.TBody(g.Map(d.Unrouted, func(e Explanation) g.Node {
				service := cmp.Or(e.Service, "-")
				if len(e.SNI) > 0 {
					service += " (sni " + sniList(e.SNI) + ")"
				}
				routed := "no"
				if e.Routed {
					routed = "yes"
				}
				return h.Tr(
					h.Td(g.Text(e.Name)), h.Td(g.Text(service)), h.Td(g.Text(routed)),
					h.Td(h.Class("reason"), g.Text(cmp.Or(e.Reason, "-"))),
					h.Td(h.Class("reason"), g.Text(strings.Join(e.Warnings, "; "))),
				)
			})),
		),
		g.If(d.UnroutedMore > 0, h.P(h.Class("empty"),
			g.Text("and "+strconv.Itoa(d.UnroutedMore)+" more: see "),
			h.A(h.Href("/api/v1/explain"), g.Text("/api/v1/explain")),
			g.Text(" or tierlb explain"))),
	}
}
