package admin

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tierlb/tierlb/backends"
)

func TestFormatBytes(t *testing.T) {
	tests := []struct {
		n    uint64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"}, {1<<20 - 1, "1024.0 KiB"},
		{1 << 20, "1.0 MiB"}, {5 << 30, "5.0 GiB"}, {3 << 40, "3.0 TiB"}, {1 << 60, "1.0 EiB"},
		{^uint64(0), "16.0 EiB"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := FormatBytes(tt.n); got != tt.want {
				t.Fatalf("FormatBytes(%d) = %q, want %q", tt.n, got, tt.want)
			}
		})
	}
}

func TestFormatAge(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "just now"}, {999 * time.Millisecond, "just now"}, {1500 * time.Millisecond, "1s ago"},
		{2*time.Minute + 3*time.Second + 400*time.Millisecond, "2m3s ago"}, {-time.Second, "just now"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := FormatAge(tt.d); got != tt.want {
				t.Fatalf("FormatAge(%v) = %q, want %q", tt.d, got, tt.want)
			}
		})
	}
}

func TestStatusPageContent(t *testing.T) {
	set := backends.NewSet("app", backends.RoundRobin, backends.SetOptions{})
	t.Cleanup(set.Close)
	set.Update([]backends.Spec{
		{ID: "<b>web-1</b>", Address: "172.20.0.3:8080", Network: "tier1", Weight: 3},
		{ID: "web-2", Address: "172.20.0.4:8080", Weight: 1},
	})
	w1 := set.Backend("<b>web-1</b>")
	w1.ConnOpened()
	w1.ConnClosed(3<<20, 1536)
	w1.RecordCheck(false, "connection refused")
	w1.SetHealth(false, "3 checks failed: connection refused")
	set.Backend("web-2").SetAdminState(backends.StateDraining)

	h := New(Options{
		Services: ServiceList{{Name: "app", Listen: "0.0.0.0:8080", Set: set}},
		Explain: func() []Explanation {
			return append(testExplanations, Explanation{Name: "web-2", Service: "app", Routed: true,
				Warnings: []string{"unknown label tierlb.wieght", "tierlb.port overruled by web-1"}})
		},
	}).Handler()
	rec := httptestRecord(h, "GET", "/", "127.0.0.1:9090", nil)
	if rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	page := rec.Body.String()
	for _, want := range []string{
		`<meta http-equiv="refresh" content="5">`,
		`<td><a href="/?service=app">app</a></td><td>0.0.0.0:8080</td><td>roundrobin</td><td class="num">2</td>`,
		`<td class="num"><span class="zero">0</span></td><td class="num"><a class="count count-down" href="/?service=app&amp;state=down">1</a></td><td class="num"><a class="count count-draining" href="/?service=app&amp;state=draining">1</a></td><td class="num"><span class="zero">0</span></td>`,
		`2 backends: <a class="count count-up" href="/?state=up">0 up</a> <a class="count count-down" href="/?state=down">1 down</a>`,
		`data-service="app" data-backend="&lt;b&gt;web-1&lt;/b&gt;" data-state="down"`, // names are escaped
		`<title>no samples yet</title>`,
		`<span class="state state-down">down</span>`,
		`<td class="reason">3 checks failed: connection refused</td>`,
		`<span class="state state-draining">draining</span>`,
		`<td class="num">3.0 MiB</td>`,
		`<td class="num">1.5 KiB</td>`,
		`title="connection refused">fail just now</td>`,
		`<td>cron</td><td>-</td><td>no</td><td class="reason">no tierlb.service label</td><td class="reason"></td>`,
		`<td>web-2</td><td>app</td><td>yes</td><td class="reason">-</td><td class="reason">unknown label tierlb.wieght; tierlb.port overruled by web-1</td>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if strings.Contains(page, "<b>web-1") {
		t.Error("backend name rendered unescaped")
	}
	if strings.Contains(page, "<td>web-1</td><td>app</td>") {
		t.Error("a routed container is listed as not routed")
	}
}

// TestStatusPageEscapesEverything puts markup into every string the page
// shows, from the services, the backends, the explanations and the query,
// and finds it escaped everywhere: the page is assembled node by node, so
// each field is escaped where it is written.
func TestStatusPageEscapesEverything(t *testing.T) {
	const bad = `zq"<x>'&`
	const escaped = `zq&#34;&lt;x&gt;&#39;&amp;`
	set := backends.NewSet(bad, backends.RoundRobin, backends.SetOptions{})
	t.Cleanup(set.Close)
	set.Update([]backends.Spec{{ID: "id" + bad, Address: "addr" + bad, Network: "net" + bad, Weight: 1}})
	b := set.Backend("id" + bad)
	b.RecordCheck(false, "check"+bad)
	b.SetHealth(false, "reason"+bad)

	h := New(Options{
		Services: ServiceList{{Name: bad, Listen: "listen" + bad, SNI: []string{"sni" + bad}, Set: set}},
		Explain: func() []Explanation {
			return []Explanation{{Name: "name" + bad, Service: "svc" + bad, SNI: []string{"esni" + bad},
				Reason: "why" + bad, Warnings: []string{"warn" + bad}}}
		},
	}).Handler()
	for _, path := range []string{"/", "/?backend=" + url.QueryEscape("id"+bad), "/?service=" + url.QueryEscape("none"+bad)} {
		rec := httptestRecord(h, "GET", path, "127.0.0.1:9090", nil)
		if rec.Code != 200 {
			t.Fatalf("GET %s: status %d", path, rec.Code)
		}
		page := rec.Body.String()
		if strings.Contains(page, "<x>") || strings.Contains(page, `zq"`) || strings.Contains(page, "zq&#34;&lt;x&gt;'") {
			t.Errorf("GET %s: page has the markup unescaped:\n%s", path, page)
		}
		wants := []string{"id" + escaped, "addr" + escaped, "net" + escaped, "reason" + escaped,
			`title="check` + escaped, "listen" + escaped, "sni" + escaped,
			`data-service="` + escaped, "name" + escaped, "svc" + escaped, "esni" + escaped, "why" + escaped,
			"warn" + escaped}
		switch {
		case strings.Contains(path, "backend="):
			wants = append(wants, `value="id`+escaped)
		case strings.Contains(path, "service="):
			wants = []string{"no service named none" + escaped}
		}
		for _, want := range wants {
			if !strings.Contains(page, want) {
				t.Errorf("GET %s: page lacks %s", path, want)
			}
		}
	}
}
