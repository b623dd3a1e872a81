package docker

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
)

func TestParseLabels(t *testing.T) {
	tests := []struct {
		name    string
		in      map[string]string
		want    labels
		wantErr []string // substrings, each must appear
	}{
		{name: "none", in: map[string]string{"other": "x"}, want: labels{Weight: 1}},
		{
			name: "all per-container labels",
			in: map[string]string{
				"tierlb.service": "app", "tierlb.port": "8080", "tierlb.network": "app_net",
				"tierlb.weight": "3", "tierlb.priority": "1", "tierlb.enable": "true", "tierlb.listen": "0.0.0.0:80",
			},
			want: labels{Service: "app", Port: 8080, Network: "app_net", Weight: 3, Priority: 1, Enable: 1, Listen: "0.0.0.0:80"},
		},
		{name: "enable false", in: map[string]string{"tierlb.enable": "false"}, want: labels{Weight: 1, Enable: -1}},
		{name: "weight zero", in: map[string]string{"tierlb.weight": "0"}, want: labels{Weight: 0}},
		{
			name: "service settings",
			in: map[string]string{
				"tierlb.balance": "leastconn", "tierlb.health.type": "http", "tierlb.health.http.path": "/healthz",
				"tierlb.health.interval": "2s", "tierlb.health.http.expect_status": "200-299,304",
				"tierlb.health.send": `PING\r\n`, "tierlb.allow": "10.0.0.0/8, 192.168.0.0/16",
			},
			want: labels{Weight: 1, Settings: map[string]string{
				"balance": "leastconn", "health.type": "http", "health.http.path": "/healthz",
				"health.interval": "2s", "health.http.expect_status": "200-299,304",
				"health.send": `PING\r\n`, "allow": "10.0.0.0/8, 192.168.0.0/16",
			}},
		},
		{
			name: "udp service",
			in: map[string]string{
				"tierlb.protocol": "udp", "tierlb.udp.responses": "1", "tierlb.udp.session_timeout": "5s",
				"tierlb.udp.max_sessions": "1000",
			},
			want: labels{Weight: 1, Settings: map[string]string{
				"protocol": "udp", "udp.responses": "1", "udp.session_timeout": "5s", "udp.max_sessions": "1000",
			}},
		},
		{name: "bad protocol", in: map[string]string{"tierlb.protocol": "sctp"}, wantErr: []string{"tierlb.protocol", `"udp"`}},
		{name: "unknown label kept as warning", in: map[string]string{"tierlb.wieght": "2"}, want: labels{Weight: 1, Unknown: []string{"tierlb.wieght"}}},
		{name: "ipv6 listen", in: map[string]string{"tierlb.listen": "[::]:8080"}, want: labels{Weight: 1, Listen: "[::]:8080"}},
		{name: "bad weight", in: map[string]string{"tierlb.weight": "heavy"}, wantErr: []string{"label tierlb.weight=\"heavy\": want an integer from 0 to 65535"}},
		{name: "negative weight", in: map[string]string{"tierlb.weight": "-1"}, wantErr: []string{"tierlb.weight"}},
		{name: "port out of range", in: map[string]string{"tierlb.port": "70000"}, wantErr: []string{"tierlb.port=\"70000\": want a port from 1 to 65535"}},
		{name: "bad enable", in: map[string]string{"tierlb.enable": "yes please"}, wantErr: []string{"tierlb.enable", "true or false"}},
		{name: "bad listen", in: map[string]string{"tierlb.listen": "app:80"}, wantErr: []string{"tierlb.listen", "HOST:PORT"}},
		{name: "listen without port", in: map[string]string{"tierlb.listen": "0.0.0.0"}, wantErr: []string{"tierlb.listen"}},
		{name: "listen port range", in: map[string]string{"tierlb.listen": "0.0.0.0:30000-30099"}, want: labels{Weight: 1, Listen: "0.0.0.0:30000-30099"}},
		{name: "listen range too long", in: map[string]string{"tierlb.listen": ":1-1001"}, wantErr: []string{"tierlb.listen", "at most 1000 ports"}},
		{name: "listen port 0", in: map[string]string{"tierlb.listen": ":0"}, wantErr: []string{"tierlb.listen"}},
		{name: "bad service name", in: map[string]string{"tierlb.service": "a/b"}, wantErr: []string{"tierlb.service", "service name"}},
		{name: "bad balance", in: map[string]string{"tierlb.balance": "fastest"}, wantErr: []string{"tierlb.balance", `"roundrobin"`}},
		{name: "bad duration", in: map[string]string{"tierlb.health.interval": "0s"}, wantErr: []string{"tierlb.health.interval", "positive Go duration"}},
		{name: "bad status range", in: map[string]string{"tierlb.health.http.expect_status": "399-200"}, wantErr: []string{"expect_status"}},
		{name: "bad escape", in: map[string]string{"tierlb.health.send": `\q`}, wantErr: []string{"tierlb.health.send"}},
		{name: "bad cidr", in: map[string]string{"tierlb.allow": "10.0.0.1"}, wantErr: []string{"tierlb.allow", "CIDR"}},
		{
			name:    "every error reported in label order",
			in:      map[string]string{"tierlb.weight": "x", "tierlb.port": "y", "tierlb.balance": "z"},
			wantErr: []string{"tierlb.balance", "tierlb.port", "tierlb.weight"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseLabels("tierlb", tt.in)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error, want %q", tt.wantErr)
				}
				var le *LabelError
				if !errors.As(err, &le) {
					t.Errorf("error %v is not a *LabelError", err)
				}
				last := -1
				for _, w := range tt.wantErr {
					i := strings.Index(err.Error(), w)
					if i < 0 {
						t.Errorf("error %q lacks %q", err, w)
					}
					if i < last {
						t.Errorf("error %q: %q out of order", err, w)
					}
					last = i
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got.Service != tt.want.Service || got.Port != tt.want.Port || got.Network != tt.want.Network ||
				got.Weight != tt.want.Weight || got.Priority != tt.want.Priority || got.Enable != tt.want.Enable ||
				got.Listen != tt.want.Listen || !maps.Equal(got.Settings, tt.want.Settings) ||
				strings.Join(got.Unknown, ",") != strings.Join(tt.want.Unknown, ",") {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseLabelsOtherPrefix(t *testing.T) {
	got, err := parseLabels("lb", map[string]string{"lb.service": "a", "tierlb.service": "b"})
	if err != nil || got.Service != "a" {
		t.Fatalf("got %+v, %v; want service a from the lb prefix", got, err)
	}
}

// FuzzParseLabels checks that any label value either parses into values
// within their documented ranges or fails with a LabelError naming the label.
func FuzzParseLabels(f *testing.F) {
	for _, s := range [][2]string{
		{"weight", "3"}, {"port", "8080"}, {"listen", "[::]:80"}, {"enable", "false"},
		{"health.send", `\x00\r\n`}, {"health.http.expect_status", "200-399"}, {"allow", "10.0.0.0/8"},
		{"priority", "-0"}, {"network", "a_b-c.d"}, {"service", ""}, {"balance", "roundrobin"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, key, value string) {
		l, err := parseLabels("tierlb", map[string]string{"tierlb." + key: value})
		if err != nil {
			var le *LabelError
			if !errors.As(err, &le) || le.Label != "tierlb."+key || le.Want == "" {
				t.Fatalf("error %v does not name label tierlb.%s with what it wants", err, key)
			}
			return
		}
		if l.Weight < 0 || l.Weight > maxWeight || l.Priority < 0 || l.Priority > maxPriority || l.Port < 0 || l.Port > 65535 {
			t.Fatalf("out of range: %+v", l)
		}
		if key == "service" && !validName(l.Service) {
			t.Fatalf("accepted service name %q", l.Service)
		}
		if key == "listen" && l.Listen != value {
			t.Fatalf("listen %q became %q", value, l.Listen)
		}
		if _, known := serviceSettings[key]; known && l.Settings[key] != value {
			t.Fatalf("setting %s=%q not kept: %v", key, value, l.Settings)
		}
	})
}

// TestLabelCacheShares: records whose tierlb labels are the same share one
// parsedLabels, whatever their other labels; others get their own; and the
// cache forgets everything once it holds maxShared, records keeping theirs.
func TestLabelCacheShares(t *testing.T) {
	rec := func(all map[string]string) *ctr {
		return &ctr{Labels: newLabelSet(all), labels: parse("tierlb", all)}
	}
	var lc labelCache
	a := rec(map[string]string{"tierlb.service": "web", "tierlb.port": "80", "com.docker.compose.container-number": "1"})
	b := rec(map[string]string{"tierlb.service": "web", "tierlb.port": "80", "com.docker.compose.container-number": "2"})
	c := rec(map[string]string{"tierlb.service": "web", "tierlb.port": "8080"})
	bad := rec(map[string]string{"tierlb.service": "web", "tierlb.port": "x"})
	for _, r := range []*ctr{a, b, c, bad} {
		lc.share(r, "tierlb")
	}
	if a.labels != b.labels {
		t.Error("two replicas with the same tierlb labels do not share their parsed labels")
	}
	if a.labels == c.labels || a.labels == bad.labels {
		t.Error("records with other tierlb labels share parsed labels")
	}
	if c.labels.Port != 8080 || bad.labels.err == nil || a.labels.Port != 80 {
		t.Errorf("shared labels read wrong: %+v %+v %+v", a.labels, c.labels, bad.labels)
	}
	// "a:1" + "b" and "a" + "1:b" would collide without the lengths.
	x := rec(map[string]string{"tierlb.a": "1:b"})
	y := rec(map[string]string{"tierlb.a:1": "b"})
	lc.share(x, "tierlb")
	lc.share(y, "tierlb")
	if x.labels == y.labels {
		t.Error("different label sets made the same key")
	}

	for i := range maxShared {
		lc.share(rec(map[string]string{"tierlb.service": fmt.Sprintf("s%d", i)}), "tierlb")
	}
	if n := len(lc.shared); n > maxShared {
		t.Fatalf("cache holds %d entries, want at most %d", n, maxShared)
	}
	if a.labels.Service != "web" {
		t.Error("a record lost its labels when the cache was cleared")
	}
}
