package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestProxyConfigs(t *testing.T) {
	p := frontPorts{Kind: frontTCP, HTTP: 1111, Iperf: 2222, Admin: 3333}
	b := backendAddrs{HTTP: "127.0.0.1:8080", Iperf: "127.0.0.1:5201", DNS: "127.0.0.1:5353",
		TLS: []string{"127.0.0.1:7001", "127.0.0.1:7002"}}
	sni := frontPorts{Kind: frontSNI, TLS: 4444, Admin: 3333}
	dns := frontPorts{Kind: frontUDPQueries, DNS: 5555, Admin: 3333}
	stream := frontPorts{Kind: frontUDPStream, Iperf: 6666, Admin: 3333}
	svcs := frontPorts{Kind: frontServices, Services: []int{7000, 7005, 7010}, Admin: 3333}
	rng := frontPorts{Kind: frontRange, Services: []int{9000, 9001, 9002}, Admin: 3333}
	const mod = "load_module /m/ngx_stream_module.so;"
	tests := []struct {
		name    string
		text    string
		want    []string
		notWant []string
	}{
		{name: "haproxy splice", text: haproxyConfig(haproxyRun{threads: 2, splice: spliceBoth}, p, b), want: []string{
			"nbthread 2", "mode tcp", "option splice-request", "option splice-response",
			"bind 127.0.0.1:1111", "server http 127.0.0.1:8080", "bind 127.0.0.1:2222", "server iperf 127.0.0.1:5201",
			"timeout client 1h",
		}, notWant: []string{"nosplice", "splice-auto"}},
		{name: "haproxy nosplice", text: haproxyConfig(haproxyRun{threads: 1, splice: spliceOff}, p, b),
			want: []string{"nbthread 1\n    nosplice\n"}, notWant: []string{"option splice"}},
		{name: "haproxy splice-auto", text: haproxyConfig(haproxyRun{threads: 1, splice: spliceAuto}, p, b),
			want: []string{"option splice-auto"}, notWant: []string{"nosplice", "splice-request", "splice-response"}},
		{name: "haproxy sni", text: haproxyConfig(haproxyRun{threads: 1}, sni, b), want: []string{
			"bind 127.0.0.1:4444", "tcp-request inspect-delay", "req.ssl_hello_type 1",
			"use_backend tls0 if { req.ssl_sni -i app.example.com }", "use_backend tls1 if { req.ssl_sni -i api.example.com }",
			"server tls0 127.0.0.1:7001", "server tls1 127.0.0.1:7002",
		}},
		{name: "haproxy services", text: haproxyConfig(haproxyRun{threads: 1}, svcs, b), want: []string{
			"listen svc0\n    bind 127.0.0.1:7000\n", "listen svc2\n    bind 127.0.0.1:7010\n    server svc2 127.0.0.1:8080",
		}},
		{name: "haproxy range", text: haproxyConfig(haproxyRun{threads: 1}, rng, b), want: []string{"bind 127.0.0.1:9000-9002\n"}},
		{name: "nginx", text: nginxConfig(2, "/tmp/x", mod, p, b), want: []string{
			mod, "daemon off;", "worker_processes 2;", "pid /tmp/x/nginx.pid;",
			"listen 127.0.0.1:1111;", "proxy_pass 127.0.0.1:8080;", "listen 127.0.0.1:2222;", "proxy_pass 127.0.0.1:5201;",
		}},
		{name: "nginx sni", text: nginxConfig(1, "/tmp/x", mod, sni, b), want: []string{
			"map $ssl_preread_server_name $sni_backend", "app.example.com 127.0.0.1:7001;", "api.example.com 127.0.0.1:7002;",
			"listen 127.0.0.1:4444;", "ssl_preread on;", "proxy_pass $sni_backend;",
		}},
		{name: "nginx udp queries", text: nginxConfig(1, "/tmp/x", mod, dns, b), want: []string{
			"listen 127.0.0.1:5555 udp reuseport;", "proxy_pass 127.0.0.1:5353;", "proxy_responses 1;",
		}},
		{name: "nginx udp stream", text: nginxConfig(1, "/tmp/x", mod, stream, b), want: []string{
			"listen 127.0.0.1:6666;", "listen 127.0.0.1:6666 udp reuseport;", "proxy_pass 127.0.0.1:5201;",
		}, notWant: []string{"proxy_responses"}},
		{name: "nginx services", text: nginxConfig(1, "/tmp/x", mod, svcs, b), want: []string{
			"server {\n        listen 127.0.0.1:7000;\n        proxy_pass", "server {\n        listen 127.0.0.1:7010;\n        proxy_pass",
		}},
		{name: "nginx range", text: nginxConfig(1, "/tmp/x", mod, rng, b), want: []string{
			"server {\n        listen 127.0.0.1:9000;\n        listen 127.0.0.1:9001;\n        listen 127.0.0.1:9002;\n        proxy_pass 127.0.0.1:8080;",
		}},
		{name: "tierlb splice", text: tierlbConfig(p, b, true), want: []string{
			"listen: 127.0.0.1:3333", "access: false", "listen: 127.0.0.1:1111", "static: [\"127.0.0.1:8080\"]", "zero_copy: auto", "type: none",
		}},
		{name: "tierlb copy", text: tierlbConfig(p, b, false), want: []string{
			"zero_copy: off", "listen: 127.0.0.1:2222", "static: [\"127.0.0.1:5201\"]",
		}, notWant: []string{"zero_copy: auto"}},
		{name: "tierlb sni", text: tierlbConfig(sni, b, true), want: []string{
			"listen: 127.0.0.1:4444\n    backends:\n      static: [\"127.0.0.1:7001\"]", "sni: [app.example.com]", "sni: [api.example.com]",
		}},
		{name: "tierlb udp queries", text: tierlbConfig(dns, b, true), want: []string{
			"listen: 127.0.0.1:5555", "protocol: udp", "responses: 1", "static: [\"127.0.0.1:5353\"]",
		}, notWant: []string{"zero_copy"}},
		{name: "tierlb udp stream", text: tierlbConfig(stream, b, true), want: []string{
			"name: iperf-control\n    listen: 127.0.0.1:6666", "name: iperf\n    listen: 127.0.0.1:6666", "protocol: udp",
		}, notWant: []string{"responses"}},
		{name: "tierlb services", text: tierlbConfig(svcs, b, true), want: []string{
			"name: svc0\n    listen: 127.0.0.1:7000", "name: svc2\n    listen: 127.0.0.1:7010",
		}},
		{name: "tierlb range", text: tierlbConfig(rng, b, true), want: []string{"name: range\n    listen: 127.0.0.1:9000-9002\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, w := range tt.want {
				if !strings.Contains(tt.text, w) {
					t.Errorf("config lacks %q:\n%s", w, tt.text)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(tt.text, w) {
					t.Errorf("config has %q:\n%s", w, tt.text)
				}
			}
		})
	}
	if n := strings.Count(tierlbConfig(svcs, b, true), "- name: "); n != 3 {
		t.Errorf("%d tierlb services for 3 ports", n)
	}
}

// TestWrkSpreadScript: thread i gets port i mod the port count, and each
// thread stops after its share.
func TestWrkSpreadScript(t *testing.T) {
	s := wrkSpreadScript([]int{7000, 7001}, 1234)
	for _, w := range []string{"local ports = {7000, 7001}", "ports[(n - 1) % #ports + 1]", "thread.addr = wrk.lookup(\"127.0.0.1\"",
		"if done >= 1234 then wrk.thread:stop() end"} {
		if !strings.Contains(s, w) {
			t.Errorf("script lacks %q:\n%s", w, s)
		}
	}
}

// TestWrkRateBound: a rate bound is each thread's share of rate × seconds,
// in a script of the bench's own, which a load with a script of its own
// cannot have.
func TestWrkRateBound(t *testing.T) {
	if s := wrkStopScript(500); !strings.Contains(s, "if done >= 500 then wrk.thread:stop() end") {
		t.Errorf("stop script:\n%s", s)
	}
	_, err := runWrk(context.Background(), "/nonexistent/wrk", wrkLoad{URL: "http://127.0.0.1:1/", Conns: 2, Threads: 2,
		Duration: time.Second, Script: "x.lua", MaxRate: 100})
	if err == nil || !strings.Contains(err.Error(), "a rate bound and a script of its own") {
		t.Errorf("script and rate bound together: %v", err)
	}
}

// TestFreePortRange: the range found is free, consecutive, and below the
// ephemeral ports.
func TestFreePortRange(t *testing.T) {
	lo, err := freePortRange(20)
	if err != nil {
		t.Fatal(err)
	}
	if lo < 10000 || !rangeFree(lo, 20) {
		t.Errorf("range from %d: not free or below 10000", lo)
	}
}

func TestNginxStream(t *testing.T) {
	tests := []struct {
		name, v string
		ok      bool
	}{
		{name: "built in", v: "configure arguments: --with-http_ssl_module --with-stream --with-threads", ok: true},
		{name: "built in last", v: "configure arguments: --with-stream", ok: true},
		{name: "absent", v: "configure arguments: --with-stream_ssl_module", ok: false},
		{name: "dynamic without the .so", v: "configure arguments: --modules-path=/nonexistent --with-stream=dynamic", ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mod, ok := nginxStream(tt.v)
			if ok != tt.ok {
				t.Errorf("ok %v (module %q), want %v", ok, mod, tt.ok)
			}
		})
	}
}

func TestParseFlagsQuick(t *testing.T) {
	o, err := parseFlags([]string{"--quick", "--cliff-conns", "256,16"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Rounds != 1 || o.Duration.Seconds() != 2 || o.IdleMax != 5000 {
		t.Errorf("quick defaults: %+v", o)
	}
	if len(o.CliffConns) != 2 || o.CliffConns[0] != 16 || o.CliffConns[1] != 256 {
		t.Errorf("cliff conns %v, want sorted [16 256]", o.CliffConns)
	}
	if _, err := parseFlags([]string{"--cliff-conns", "0"}); err == nil {
		t.Error("a zero connection count was accepted")
	}
	if _, err := parseFlags([]string{"--duration", "10ms"}); err == nil {
		t.Error("a sub-second duration was accepted")
	}
}
