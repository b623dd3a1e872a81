package admin

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

const dashboardPath = "../examples/grafana/tierlb-dashboard.json"

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type variable struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Query any    `json:"query"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	GridPos *struct{ X, Y, W, H int } `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's panels
}

var metricName = regexp.MustCompile(`\btierlb_[a-z0-9_]+`)

// specName maps a series name to its SPEC metric: histogram series carry
// _bucket, _sum and _count suffixes.
func specName(series string) (string, bool) {
	if _, ok := specMetrics[series]; ok {
		return series, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(series, suffix)
		if ok && specMetrics[base] == dto.MetricType_HISTOGRAM {
			return base, true
		}
	}
	return "", false
}

// TestGrafanaDashboard checks the example dashboard parses, is well formed,
// uses only SPEC's metric names, and covers what operators look at first.
func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	if d.Title == "" || d.UID == "" {
		t.Errorf("dashboard needs a title and a uid, got %q %q", d.Title, d.UID)
	}
	// Variable queries (label_values) name metrics too; only panel
	// queries must rate() their counters.
	var exprs, varExprs []string
	for _, v := range d.Templating.List {
		if q, err := json.Marshal(v.Query); err == nil {
			varExprs = append(varExprs, string(q))
		}
	}
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d used twice", p.ID)
			}
			ids[p.ID] = true
			if p.Title == "" || p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 {
				t.Errorf("panel %d %q: needs a title and a gridPos", p.ID, p.Title)
			}
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: datasource must be the ${datasource} variable", p.Title)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				if tg.RefID == "" || tg.Expr == "" {
					t.Errorf("panel %q: a target without refId or expr", p.Title)
				}
				if strings.Count(tg.Expr, "(") != strings.Count(tg.Expr, ")") ||
					strings.Count(tg.Expr, "{") != strings.Count(tg.Expr, "}") {
					t.Errorf("panel %q: unbalanced brackets in %s", p.Title, tg.Expr)
				}
				exprs = append(exprs, tg.Expr)
			}
		}
	}
	walk(d.Panels)

	used := map[string]bool{}
	for i, e := range append(exprs, varExprs...) {
		panelQuery := i < len(exprs)
		for _, series := range metricName.FindAllString(e, -1) {
			name, ok := specName(series)
			if !ok {
				t.Errorf("%s is not a metric SPEC lists (in %s)", series, e)
				continue
			}
			used[name] = true
			if typ := specMetrics[name]; panelQuery && typ == dto.MetricType_COUNTER && !regexp.MustCompile(`(rate|increase)\(`+name).MatchString(e) {
				t.Errorf("counter %s used without rate() or increase(): %s", name, e)
			}
		}
	}
	for _, want := range []string{
		"tierlb_connections_accepted_total", "tierlb_backend_connections_active", "tierlb_backend_bytes_total",
		"tierlb_backend_connect_errors_total", "tierlb_backend_up", "tierlb_health_checks_total",
		"tierlb_connections_rejected_total", "tierlb_backend_connect_duration_seconds", "tierlb_connection_duration_seconds",
	} {
		if !used[want] {
			t.Errorf("the dashboard does not chart %s", want)
		}
	}
	if !slices.ContainsFunc(d.Templating.List, func(v variable) bool { return v.Name == "datasource" && v.Type == "datasource" }) {
		t.Error("no datasource variable: the dashboard would be tied to one Prometheus")
	}
}
