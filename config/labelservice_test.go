package config

import (
	"strings"
	"testing"
	"time"

	"github.com/tierlb/tierlb/backends/docker"
)

func TestLabelServiceConfig(t *testing.T) {
	tests := []struct {
		name     string
		decl     docker.LabelService
		check    func(t *testing.T, sc ServiceConfig)
		wantErrs []string // substrings, each must appear
	}{
		{
			name: "defaults like a file service",
			decl: docker.LabelService{Name: "db", Listen: "0.0.0.0:5432"},
			check: func(t *testing.T, sc ServiceConfig) {
				if sc.Balance != "roundrobin" || sc.Health.Type != "tcp" || sc.Health.Interval != 2*time.Second || sc.Retries != 2 ||
					sc.Backends.Docker == nil || sc.Backends.Docker.Service != "db" || sc.Timeouts.Idle != time.Hour {
					t.Errorf("defaults not applied: %+v", sc)
				}
			},
		},
		{
			name: "settings decoded from strings",
			decl: docker.LabelService{Name: "db", Listen: "[::]:5432", Settings: map[string]string{
				"balance": "leastconn", "health.type": "http", "health.http.path": "/ok", "health.interval": "500ms",
				"retries": "0", "allow": "10.0.0.0/8, 192.168.0.0/16", "reuse_port": "true", "slow_start": "5s",
			}},
			check: func(t *testing.T, sc ServiceConfig) {
				if sc.Balance != "leastconn" || sc.Health.Type != "http" || sc.Health.HTTP.Path != "/ok" || sc.Health.Interval != 500*time.Millisecond ||
					sc.Retries != 0 || len(sc.Allow) != 2 || sc.Allow[1] != "192.168.0.0/16" || !sc.ReusePort || sc.SlowStart != 5*time.Second {
					t.Errorf("settings not applied: %+v", sc)
				}
			},
		},
		{
			name:     "errors name the labels",
			decl:     docker.LabelService{Name: "db", Listen: "nowhere", Settings: map[string]string{"health.interval": "0s", "retries": "many"}},
			wantErrs: []string{"label tierlb.listen:", "label tierlb.health.interval: must be greater than 0", "label tierlb.retries:"},
		},
		{
			name:     "rules across keys",
			decl:     docker.LabelService{Name: "db", Listen: ":5432", Settings: map[string]string{"health.type": "send-expect"}},
			wantErrs: []string{"label tierlb.health.expect: a send-expect check needs send, expect or both"},
		},
		{
			name:     "a value and a section at once",
			decl:     docker.LabelService{Name: "db", Listen: ":5432", Settings: map[string]string{"health": "tcp", "health.type": "tcp"}},
			wantErrs: []string{"label tierlb.health.type: health is both a value and a section"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc, err := LabelService(tt.decl, "tierlb")
			if len(tt.wantErrs) > 0 {
				if err == nil {
					t.Fatalf("no error, config %+v", sc)
				}
				for _, w := range tt.wantErrs {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, sc)
		})
	}
}

// FuzzLabelServiceConfig: whatever a container's labels say, the conversion
// returns an error or a service that validates like a file service.
func FuzzLabelServiceConfig(f *testing.F) {
	f.Add("db", "0.0.0.0:5432", "health.type", "http")
	f.Add("db", ":1", "timeouts.idle", "1h")
	f.Add("x", "[::1]:80", "allow", "10.0.0.0/8,::/0")
	f.Add("", "", "health.http", "x")
	f.Fuzz(func(t *testing.T, name, listen, key, value string) {
		if key == "" || strings.HasPrefix(key, ".") || strings.HasSuffix(key, ".") || strings.Contains(key, "..") {
			return // not a label key the provider passes on
		}
		sc, err := LabelService(docker.LabelService{Name: name, Listen: listen, Settings: map[string]string{key: value}}, "tierlb")
		if err != nil {
			if !strings.Contains(err.Error(), "label tierlb.") {
				t.Fatalf("error without the label: %v", err)
			}
			return
		}
		p := &problems{}
		validateService(&sc, "services[0]", true, p)
		if err := p.err(); err != nil {
			t.Fatalf("accepted %q=%q but the result does not validate: %v", key, value, err)
		}
		if sc.Name != name || sc.Listen != listen {
			t.Fatalf("name/listen %q %q, want %q %q", sc.Name, sc.Listen, name, listen)
		}
	})
}
