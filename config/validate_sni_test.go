package config

import (
	"strings"
	"testing"
	"time"
)

func TestSharedListenLoads(t *testing.T) {
	yaml := "services:\n" +
		svc("app", "0.0.0.0:8443", "sni: [app.example.com, App2.example.com.]") +
		svc("wild", "0.0.0.0:8443", "sni: ['*.example.com']") +
		svc("default", "0.0.0.0:8443", "sni: ['*']\ntimeouts: {client_hello: 5s}") +
		svc("other", "0.0.0.0:9443", "")
	cfg, err := load(t, "c.yaml", yaml)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Services[0].SNI; len(got) != 2 || got[1] != "App2.example.com." {
		t.Errorf("sni = %q, want the names as written", got)
	}
	if got := cfg.Services[1].Timeouts.ClientHello; got != 5*time.Second {
		t.Errorf("timeouts.client_hello = %v, want the 5s default", got)
	}
	pc, err := FrontConfig(cfg.Services[:3], true)
	if err != nil || pc.Name != "0.0.0.0:8443" || pc.Timeouts.ClientHello != 5*time.Second {
		t.Errorf("FrontConfig = %+v, %v", pc, err)
	}
}

func TestSharedListenRefused(t *testing.T) {
	two := func(a, b string) string {
		return "services:\n" + svc("a", "0.0.0.0:8443", a) + svc("b", "0.0.0.0:8443", b)
	}
	tests := []struct {
		name, yaml, want string
	}{
		{"one without sni", two("sni: [a.example.com]", ""),
			`services[1].sni: empty, but listen 0.0.0.0:8443 is shared with services[0] (a), which routes by sni`},
		{"first without sni", two("", "sni: [b.example.com]"),
			`services[0].sni: empty, but listen 0.0.0.0:8443 is shared with services[1] (b), which routes by sni`},
		{"same exact name", two("sni: [x.example.com, a.example.com]", "sni: [A.example.com.]"),
			`services[1].sni[0]: "A.example.com." is also routed to services[0] (sni[1]) on listen 0.0.0.0:8443`},
		{"same wildcard", two("sni: ['*.example.com']", "sni: ['*.example.com']"),
			`services[1].sni[0]: "*.example.com" is also routed to services[0] (sni[0])`},
		{"two defaults", two("sni: ['*']", "sni: ['*']"), `services[1].sni[0]: "*" is also routed to services[0]`},
		{"overlapping address", "services:\n" + svc("a", "0.0.0.0:8443", "sni: [a.example.com]") + svc("b", "127.0.0.1:8443", "sni: [b.example.com]"),
			`services[1].listen: listen address overlaps 127.0.0.1:8443 (also services[0]: 0.0.0.0:8443)`},
		{"accept_proxy_protocol differs", two("sni: [a.example.com]\naccept_proxy_protocol: [10.0.0.0/8]", "sni: [b.example.com]"),
			`services[1].accept_proxy_protocol: [], but services[0] has [10.0.0.0/8] on the listen address they share`},
		{"client_hello differs", two("sni: [a.example.com]", "sni: [b.example.com]\ntimeouts: {client_hello: 1s}"),
			`services[1].timeouts.client_hello: 1s, but services[0] has 5s`},
		{"reuse_port differs", two("sni: [a.example.com]\nreuse_port: true", "sni: [b.example.com]"),
			`services[1].reuse_port: false, but services[0] has true`},
		{"bad name", "services:\n" + svc("a", ":8443", "sni: ['a b.example.com']"), `services[0].sni[0]: "a b.example.com": character ' '`},
		{"star inside", "services:\n" + svc("a", ":8443", "sni: ['a.*.com']"), `services[0].sni[0]: "a.*.com": character '*'`},
		{"empty name", "services:\n" + svc("a", ":8443", "sni: ['']"), `services[0].sni[0]: "": empty name`},
		{"zero client_hello", "services:\n" + svc("a", ":8443", "sni: [a.example.com]\ntimeouts: {client_hello: 0s}"),
			`services[0].timeouts.client_hello: must be greater than 0, got 0s`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantProblem(t, tt.yaml, tt.want)
		})
	}
}

func TestCanShare(t *testing.T) {
	a := ServiceConfig{Name: "a", Listen: ":8443", SNI: []string{"a.example.com"}}
	b := ServiceConfig{Name: "b", Listen: ":8443", SNI: []string{"b.example.com"}}
	if err := CanShare(&a, &b); err != nil {
		t.Errorf("distinct names: %v", err)
	}
	b.SNI = []string{"A.EXAMPLE.COM"}
	if err := CanShare(&a, &b); err == nil || !strings.Contains(err.Error(), `"a.example.com" is also routed to service b`) {
		t.Errorf("same name: %v", err)
	}
	b.SNI = nil
	if err := CanShare(&a, &b); err == nil || !strings.Contains(err.Error(), "only when each sets sni") {
		t.Errorf("no names: %v", err)
	}
}
