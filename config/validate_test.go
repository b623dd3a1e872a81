package config

import (
	"strings"
	"testing"
)

// svc is one service entry with the given extra keys, indented for
// minimal-looking YAML test cases.
func svc(name, listen, extra string) string {
	s := "  - name: " + name + "\n    listen: \"" + listen + "\"\n"
	if !strings.Contains(extra, "backends:") {
		s += "    backends: {static: [\"127.0.0.1:9001\"]}\n"
	}
	if extra != "" {
		s += "    " + strings.ReplaceAll(strings.TrimSpace(extra), "\n", "\n    ") + "\n"
	}
	return s
}

func TestErrorClasses(t *testing.T) {
	one := func(extra string) string { return "services:\n" + svc("app", "127.0.0.1:8080", extra) }
	tests := []struct {
		name, yaml string
		want       string // one line of the error output
	}{
		{"not a duration", one("timeouts: {connect: 2x}"), `services[0].timeouts.connect: "2x" is not a duration`},
		{"bare number duration", one("slow_start: 5"), `services[0].slow_start: 5 is not a duration`},
		{"not an integer", one("retries: two"), `services[0].retries: "two" is not an integer`},
		{"fractional integer", one("max_conns: 1.5"), `services[0].max_conns: 1.5 is not an integer`},
		{"not a boolean", one("reuse_port: yes please"), `services[0].reuse_port: "yes please" is not a boolean`},
		{"wrong shape", one("timeouts: 3s"), `services[0].timeouts: expected a map, got "3s"`},
		{"services not a list", "services: {name: app}\n", `services: expected a list, got a map`},
		{"static entry wrong type", one("backends: {static: [[1]]}"), `services[0].backends.static[0]: expected "host:port" or {address, weight, priority}, got a list`},
		{"duplicate listen", "services:\n" + svc("a", "0.0.0.0:8080", "") + svc("b", "127.0.0.1:8081", "") + svc("c", "0.0.0.0:8080", ""),
			`services[2].listen: duplicate listen address 0.0.0.0:8080 (also services[0]: 0.0.0.0:8080)`},
		{"overlapping listen", "services:\n" + svc("a", "0.0.0.0:8080", "") + svc("b", "127.0.0.1:8080", ""),
			`services[1].listen: listen address overlaps 127.0.0.1:8080 (also services[0]: 0.0.0.0:8080)`},
		{"overlapping port ranges", "services:\n" + svc("a", "0.0.0.0:30000-30099", "") + svc("b", "127.0.0.1:30050-30149", ""),
			`services[1].listen: 127.0.0.1:30050-30149 overlaps services[0].listen 0.0.0.0:30000-30099`},
		{"port in a range", "services:\n" + svc("a", ":30000-30099", "") + svc("b", "0.0.0.0:30099", ""),
			`services[1].listen: 0.0.0.0:30099 overlaps services[0].listen :30000-30099`},
		{"range over a port", "services:\n" + svc("a", "10.0.0.1:8080", "") + svc("b", "[::]:8000-8099", ""),
			`services[1].listen: [::]:8000-8099 overlaps services[0].listen 10.0.0.1:8080`},
		{"range too long", "services:\n" + svc("a", ":1000-2000", ""), `services[0].listen: ":1000-2000": port range "1000-2000": 1001 ports; at most 1000`},
		{"range reversed", "services:\n" + svc("a", ":2000-1000", ""), `services[0].listen: ":2000-1000": port range "2000-1000": want the first port below the last`},
		{"range with sni", "services:\n" + svc("a", ":8443-8444", "sni: [a.example.com]"), `services[0].listen: :8443-8444 is a port range, but the service routes by sni`},
		{"admin range", "admin: {listen: '127.0.0.1:9000-9001'}\n" + one(""), `admin.listen: 127.0.0.1:9000-9001 is a port range; want one port`},
		{"duplicate name", "services:\n" + svc("a", ":1", "") + svc("a", ":2", ""), `services[1].name: duplicate service name "a" (also services[0])`},
		{"missing name", "services:\n" + svc("", ":1", ""), `services[0].name: missing`},
		{"bad name", "services:\n" + svc("a b", ":1", ""), `services[0].name: "a b" is not a service name`},
		{"missing listen", "services: [{name: a, backends: {static: ['127.0.0.1:1']}}]\n", `services[0].listen: missing`},
		{"listen port range", "services:\n" + svc("a", "127.0.0.1:70000", ""), `services[0].listen: "127.0.0.1:70000": port 70000 is out of range (0-65535)`},
		{"listen host not ip", "services:\n" + svc("a", "example.com:80", ""), `services[0].listen: "example.com:80": listen host must be an IP address`},
		{"no backends", "services: [{name: a, listen: ':1'}]\n", `services[0].backends: no static backends and no docker selector`},
		{"bad backend address", one("backends: {static: ['10.0.0.1']}"), `services[0].backends.static[0].address: backend address "10.0.0.1": missing port`},
		{"backend port range", one("backends: {static: ['10.0.0.1:0']}"), `services[0].backends.static[0].address: backend address "10.0.0.1:0": port 0 out of range`},
		{"duplicate backend", one("backends: {static: ['10.0.0.1:80', '10.0.0.1:080']}"), `services[0].backends.static[1].address: duplicate backend 10.0.0.1:080 (also static[0])`},
		{"negative weight", one("backends: {static: [{address: '10.0.0.1:80', weight: -1}]}"), `services[0].backends.static[0].weight: -1 is out of range (0-65535)`},
		{"empty docker selector", one("backends: {docker: {port: 80}}"), `services[0].backends.docker: needs service or a non-empty selector`},
		{"docker selector without docker", "docker: {enabled: false}\n" + one("backends: {docker: {service: app}}"),
			`services[0].backends.docker: a docker selector needs Docker discovery, but docker.enabled is false`},
		{"docker port range", one("backends: {docker: {service: app, port: 65536}}"), `services[0].backends.docker.port: port 65536 is out of range`},
		{"bad CIDR", one("allow: [10.0.0.0/33]"), `services[0].allow[0]: "10.0.0.0/33" is not a CIDR`},
		{"bad proxy CIDR", one("accept_proxy_protocol: [nope]"), `services[0].accept_proxy_protocol[0]: "nope" is not a CIDR or IP address`},
		{"bad balance", one("balance: fastest"), `services[0].balance: unknown balance "fastest"`},
		{"bad health type", one("health: {type: icmp}"), `services[0].health.type: "icmp" is not one of tcp, http, send-expect, docker, none`},
		{"docker health on static backends", one("health: {type: docker}"),
			`services[0].health.type: docker reads each container's HEALTHCHECK, but backends.static lists addresses with no container`},
		{"bad rise", one("health: {rise: 0}"), `services[0].health.rise: must be at least 1, got 0`},
		{"bad http path", one("health: {http: {path: healthz}}"), `services[0].health.http.path: "healthz" must start with /`},
		{"bad expect_status", one("health: {http: {expect_status: 300-200}}"), `services[0].health.http.expect_status: range "300-200" is reversed`},
		{"bad http host", one("health: {http: {host: 'a b'}}"), `services[0].health.http.host: not a valid Host header "a b"`},
		{"bad expect regexp", one("health: {type: send-expect, send: PING, expect: 're:('}"), `services[0].health.expect: bad regular expression`},
		{"send-expect without both", one("health: {type: send-expect}"), `services[0].health.expect: a send-expect check needs send, expect or both`},
		{"negative max_fails", one("health: {passive: {max_fails: -1}}"), `services[0].health.passive.max_fails: -1 is negative`},
		{"bad proxy_protocol", one("proxy_protocol: v3"), `services[0].proxy_protocol: "v3" is not one of "", v1, v2`},
		{"bad zero_copy", one("zero_copy: on"), `services[0].zero_copy: "on" is not one of auto, off`},
		{"bad on_backend_down", one("on_backend_down: kill"), `services[0].on_backend_down: "kill" is not one of keep, close`},
		{"negative retries", one("retries: -1"), `services[0].retries: -1 is negative`},
		{"negative max_conns", one("max_conns: -5"), `services[0].max_conns: -5 is negative`},
		{"zero connect timeout", one("timeouts: {connect: 0s}"), `services[0].timeouts.connect: must be greater than 0, got 0s`},
		{"negative slow_start", one("slow_start: -1s"), `services[0].slow_start: -1s is negative`},
		{"bad log level", "log: {level: loud}\n" + one(""), `log.level: "loud" is not one of debug, info, warn, error`},
		{"bad log format", "log: {format: xml}\n" + one(""), `log.format: "xml" is not one of text, json`},
		{"bad admin listen", "admin: {listen: 'localhost'}\n" + one(""), `admin.listen: "localhost" is not host:port`},
		{"negative drain", "shutdown: {drain_timeout: -1s}\n" + one(""), `shutdown.drain_timeout: -1s is negative`},
		{"negative loops", "engine: {loops: -1}\n" + one(""), `engine.loops: -1 is out of range (0-1024; 0 means one per core)`},
		{"too many loops", "engine: {loops: 1025}\n" + one(""), `engine.loops: 1025 is out of range (0-1024; 0 means one per core)`},
		{"loops not a number", "engine: {loops: all}\n" + one(""), `engine.loops: "all" is not an integer`},
		{"bad docker enabled", "docker: {enabled: maybe}\n" + one(""), `docker.enabled: "maybe" is not one of auto, true, false`},
		{"bad docker host", "docker: {host: 'ftp://x'}\n" + one(""), `docker.host: "ftp://x": scheme "ftp" is not one of`},
		{"bad label prefix", "docker: {label_prefix: 'Tier LB'}\n" + one(""), `docker.label_prefix: "Tier LB" is not a label prefix`},
		{"zero resync", "docker: {resync_interval: 0s}\n" + one(""), `docker.resync_interval: must be greater than 0, got 0s`},
		{"bad swarm mode", "docker: {swarm: yes}\n" + one(""), `docker.swarm: "yes" is not one of auto, true, false`},
		{"zero swarm poll", "docker: {swarm_poll: 0s}\n" + one(""), `docker.swarm_poll: must be greater than 0, got 0s`},
		{"nothing to serve", "docker: {enabled: false}\n", `services: no services configured, and Docker label services are off`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantProblem(t, tt.yaml, tt.want)
		})
	}
}

// TestEveryErrorAtOnce checks that decoding and validation problems from
// every part of the file are reported together, with no follow-up error on
// a key that failed to decode.
func TestEveryErrorAtOnce(t *testing.T) {
	yaml := "log: {level: loud}\nadmin: {tokn: x}\nservices:\n" +
		svc("a", "127.0.0.1:8080", "timeouts: {connect: 2x}\nbalance: fastest") +
		svc("b", "127.0.0.1:8080", "retries: lots\nallow: [300.0.0.0/8]")
	_, err := load(t, "c.yaml", yaml)
	want := []string{
		`admin.tokn: unknown key`,
		`log.level: "loud" is not one of debug, info, warn, error`,
		`services[0].timeouts.connect: "2x" is not a duration (write it like 1500ms, 2s, 1h30m)`,
		`services[0].balance: unknown balance "fastest" (want roundrobin, leastconn, random2 or sourcehash)`,
		`services[1].retries: "lots" is not an integer`,
		`services[1].allow[0]: "300.0.0.0/8" is not a CIDR (like 10.0.0.0/8 or fd00::/8)`,
		`services[1].listen: duplicate listen address 127.0.0.1:8080 (also services[0]: 127.0.0.1:8080)`,
	}
	got := Problems(err)
	if len(got) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(got), len(want), err)
	}
	for i := range want {
		if got[i].Error() != want[i] {
			t.Errorf("error %d = %q, want %q", i, got[i], want[i])
		}
	}
}

// TestPortRangesLoad: ranges that share no port, and a TCP and a UDP
// service on the same range, are accepted.
func TestPortRangesLoad(t *testing.T) {
	yaml := "services:\n" +
		svc("ftp", "0.0.0.0:30000-30099", "") +
		svc("rtp", "0.0.0.0:30100-30199", "") +
		svc("rtp-udp", "0.0.0.0:30100-30199", "protocol: udp\nhealth: {type: none}") +
		svc("web", "0.0.0.0:8080", "") +
		svc("local", "127.0.0.1:31000-31999", "")
	cfg, err := load(t, "c.yaml", yaml)
	if err != nil {
		t.Fatal(err)
	}
	la, err := ParseListenAddr(cfg.Services[0].Listen)
	if err != nil || !la.IsRange() || la.Port != 30000 || la.Last != 30099 || la.String() != "0.0.0.0:30000-30099" {
		t.Errorf("ParseListenAddr(%q) = %+v (%s), %v", cfg.Services[0].Listen, la, la, err)
	}
}

// TestListenAddrConflicts: ranges conflict where they share a port on an
// address they both bind.
func TestListenAddrConflicts(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{":30000-30099", ":30099", true},
		{":30000-30099", ":30100", false},
		{":30000-30099", "127.0.0.1:29001-30000", true},
		{"10.0.0.1:30000-30099", "10.0.0.2:30000-30099", false},
		{"[::]:1-10", "10.0.0.1:5", true},
		{":1-10", ":0", false},
		{":80", ":80", true},
	}
	for _, tt := range tests {
		a, aerr := ParseListenAddr(tt.a)
		b, berr := ParseListenAddr(tt.b)
		if aerr != nil || berr != nil {
			t.Fatalf("%s, %s: %v, %v", tt.a, tt.b, aerr, berr)
		}
		if got := a.Conflicts(b); got != tt.want || b.Conflicts(a) != tt.want {
			t.Errorf("%s conflicts with %s: %v, want %v (both ways)", tt.a, tt.b, got, tt.want)
		}
	}
}
