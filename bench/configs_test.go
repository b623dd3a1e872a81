package main

import (
	"strings"
	"testing"
)

func TestProxyConfigs(t *testing.T) {
	p := frontPorts{HTTP: 1111, Iperf: 2222, Admin: 3333}
	tests := []struct {
		name string
		text string
		want []string
	}{
		{name: "haproxy", text: haproxyConfig(2, p, "127.0.0.1:8080", "127.0.0.1:5201"), want: []string{
			"nbthread 2", "mode tcp", "option splice-request", "option splice-response",
			"bind 127.0.0.1:1111", "server whoami 127.0.0.1:8080", "bind 127.0.0.1:2222", "server iperf 127.0.0.1:5201",
			"timeout client 1h",
		}},
		{name: "nginx", text: nginxConfig(2, "/tmp/x", "load_module /m/ngx_stream_module.so;", p, "127.0.0.1:8080", "127.0.0.1:5201"), want: []string{
			"load_module /m/ngx_stream_module.so;", "daemon off;", "worker_processes 2;", "pid /tmp/x/nginx.pid;",
			"listen 127.0.0.1:1111;", "proxy_pass 127.0.0.1:8080;", "listen 127.0.0.1:2222;", "proxy_pass 127.0.0.1:5201;",
		}},
		{name: "tierlb splice", text: tierlbConfig(p, "127.0.0.1:8080", "127.0.0.1:5201", true), want: []string{
			"listen: 127.0.0.1:3333", "access: false", "listen: 127.0.0.1:1111", "static: [\"127.0.0.1:8080\"]", "zero_copy: auto", "type: none",
		}},
		{name: "tierlb copy", text: tierlbConfig(p, "127.0.0.1:8080", "127.0.0.1:5201", false), want: []string{
			"zero_copy: off", "listen: 127.0.0.1:2222", "static: [\"127.0.0.1:5201\"]",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, w := range tt.want {
				if !strings.Contains(tt.text, w) {
					t.Errorf("config lacks %q:\n%s", w, tt.text)
				}
			}
		})
	}
	if strings.Contains(tierlbConfig(p, "a:1", "b:2", false), "zero_copy: auto") {
		t.Error("zero_copy off config still says auto")
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
