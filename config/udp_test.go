package config

import (
	"strings"
	"testing"
	"time"

	"github.com/tierlb/tierlb/backends/docker"
)

func TestUDPServiceDefaults(t *testing.T) {
	cfg, err := load(t, "c.yaml", "services:\n"+svc("dns", "0.0.0.0:53", "protocol: udp"))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Services[0]
	if !s.IsUDP() || s.UDP == nil || *s.UDP != (UDPConfig{SessionTimeout: 30 * time.Second}) {
		t.Fatalf("udp = %+v (protocol %q), want the defaults", s.UDP, s.Protocol)
	}
	if s.Health.Type != "none" || s.Health.Passive.MaxFails != 3 || s.Balance != "roundrobin" {
		t.Fatalf("health %+v, balance %s", s.Health, s.Balance)
	}
	// TCP-only settings are not filled in, so that a user's are known.
	if s.Retries != 0 || s.Timeouts != (TimeoutsConfig{}) || s.ZeroCopy != "" {
		t.Fatalf("TCP defaults on a UDP service: %+v", s)
	}
	tcp, err := load(t, "c.yaml", "services:\n"+svc("web", "0.0.0.0:80", ""))
	if err != nil {
		t.Fatal(err)
	}
	if tcp.Services[0].Protocol != "tcp" || tcp.Services[0].UDP != nil {
		t.Fatalf("tcp service: protocol %q, udp %+v", tcp.Services[0].Protocol, tcp.Services[0].UDP)
	}
}

func TestUDPServiceErrors(t *testing.T) {
	udp := func(extra string) string {
		return "services:\n" + svc("dns", "127.0.0.1:53", "protocol: udp\n"+extra)
	}
	tests := []struct {
		name, yaml string
		want       string
	}{
		{"bad protocol", "services:\n" + svc("a", ":1", "protocol: sctp"), `services[0].protocol: "sctp" is not one of tcp, udp`},
		{"udp keys on tcp", "services:\n" + svc("a", ":1", "udp: {responses: 1}"), `services[0].udp: applies to UDP services only (protocol: udp)`},
		{"timeouts on udp", udp("timeouts: {idle: 1m}"), `services[0].timeouts: a TCP setting; a UDP service takes udp.session_timeout`},
		{"retries on udp", udp("retries: 3"), `services[0].retries: a TCP setting`},
		{"max_conns on udp", udp("max_conns: 3"), `services[0].max_conns: a TCP setting`},
		{"proxy_protocol on udp", udp("proxy_protocol: v2"), `services[0].proxy_protocol: a TCP setting`},
		{"zero session timeout", udp("udp: {session_timeout: 0s}"), `services[0].udp.session_timeout: must be greater than 0, got 0s`},
		{"negative responses", udp("udp: {responses: -1}"), `services[0].udp.responses: -1 is negative`},
		{"negative max_sessions", udp("udp: {max_sessions: -1}"), `services[0].udp.max_sessions: -1 is negative`},
		{"unknown udp key", udp("udp: {timeout: 1s}"), `services[0].udp.timeout`},
		{"tcp check", udp("health: {type: tcp}"), `services[0].health.type: "tcp" checks TCP; a UDP service takes send-expect, docker or none`},
		{"http check", udp("health: {type: http}"), `services[0].health.type: "http" checks TCP`},
		{"send-expect without expect", udp("health: {type: send-expect, send: x}"), `services[0].health.expect: send-expect over UDP needs expect`},
		{"host name backend", udp("backends: {static: ['dns.example:53']}"), `services[0].backends.static[0].address: "dns.example:53": a UDP backend is an IP address and port`},
		{"sni on udp", udp("sni: [dns.example.com]"), `services[0].sni: a TCP setting`},
		{"max_conns_per_client on udp", udp("max_conns_per_client: 3"), `services[0].max_conns_per_client: a TCP setting`},
		{"defer_dial on udp", udp("defer_dial: true"), `services[0].defer_dial: a TCP setting`},
		{"udp beside sni services on a shared port", "services:\n" + svc("a", "0.0.0.0:443", "sni: [a.example.com]") +
			svc("b", "0.0.0.0:443", "sni: [b.example.com]") + svc("c", "0.0.0.0:443", "protocol: udp\nsni: [c.example.com]"),
			`services[2].sni: a TCP setting`},
		{"two udp on one port", "services:\n" + svc("a", "0.0.0.0:53", "protocol: udp") + svc("b", "127.0.0.1:53", "protocol: udp"),
			`services[1].listen: listen address overlaps 127.0.0.1:53 (also services[0]: 0.0.0.0:53)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantProblem(t, tt.yaml, tt.want)
		})
	}
}

func TestTCPAndUDPShareAPort(t *testing.T) {
	cfg, err := load(t, "c.yaml", "services:\n"+svc("dns-tcp", "0.0.0.0:53", "")+svc("dns", "0.0.0.0:53",
		"protocol: udp\nudp: {responses: 1}\nhealth: {type: send-expect, send: '\\x00', expect: ok}"))
	if err != nil {
		t.Fatal(err)
	}
	uc, err := cfg.Services[1].UDPConfig(true)
	if err != nil {
		t.Fatal(err)
	}
	if uc.Responses != 1 || uc.SessionTimeout != 30*time.Second || uc.Listen != "0.0.0.0:53" || !uc.AccessLog {
		t.Fatalf("udp config %+v", uc)
	}
	if hc := cfg.Services[1].HealthMonitorConfig(); hc.Network != "udp" || hc.Type != "send-expect" {
		t.Fatalf("health config %+v", hc)
	}
}

func TestUDPLabelService(t *testing.T) {
	sc, err := LabelService(docker.LabelService{Name: "dns", Listen: "0.0.0.0:53", Settings: map[string]string{
		"protocol": "udp", "udp.responses": "1", "udp.session_timeout": "5s", "balance": "sourcehash",
	}}, "tierlb")
	if err != nil {
		t.Fatal(err)
	}
	if !sc.IsUDP() || sc.UDP.Responses != 1 || sc.UDP.SessionTimeout != 5*time.Second || sc.Health.Type != "none" {
		t.Fatalf("label service %+v udp %+v", sc, sc.UDP)
	}
	_, err = LabelService(docker.LabelService{Name: "dns", Listen: "0.0.0.0:53", Settings: map[string]string{
		"protocol": "udp", "timeouts.idle": "1m", "health.type": "tcp",
	}}, "tierlb")
	for _, want := range []string{"label tierlb.timeouts: a TCP setting", `label tierlb.health.type: "tcp" checks TCP`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not contain %q", err, want)
		}
	}
}

// tierlb check prints each service with its own protocol's keys only.
func TestYAMLShowsTheProtocolsKeys(t *testing.T) {
	cfg, err := load(t, "c.yaml", "services:\n"+svc("web", "0.0.0.0:80", "")+svc("dns", "0.0.0.0:53", "protocol: udp"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := cfg.YAML(nil)
	if err != nil {
		t.Fatal(err)
	}
	web, dns, ok := strings.Cut(string(out), "- name: dns")
	if !ok {
		t.Fatalf("no dns service in:\n%s", out)
	}
	for _, c := range []struct {
		text, key string
		want      bool
	}{
		{web, "timeouts:", true}, {web, "zero_copy:", true}, {web, "udp:", false},
		{dns, "timeouts:", false}, {dns, "retries:", false}, {dns, "udp:", true}, {dns, "session_timeout: 30s", true},
	} {
		if strings.Contains(c.text, c.key) != c.want {
			t.Errorf("%q printed: %v, want %v, in:\n%s", c.key, !c.want, c.want, c.text)
		}
	}
}

// A shared TLS port's services are TCP: a UDP service on the same port
// (HTTP/3 beside HTTP/1.1 and HTTP/2) is a socket of its own.
func TestUDPBesideASharedTLSPort(t *testing.T) {
	yaml := "services:\n" + svc("a", "0.0.0.0:443", "sni: [a.example.com]") + svc("b", "0.0.0.0:443", "sni: ['*']") +
		svc("quic", "0.0.0.0:443", "protocol: udp")
	if _, err := load(t, "c.yaml", yaml); err != nil {
		t.Fatalf("a UDP service beside two sni services on one port was refused: %v", err)
	}
}
