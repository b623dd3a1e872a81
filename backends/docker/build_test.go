package docker

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func record(t *testing.T, c fakeCtr) *ctr {
	t.Helper()
	r, ok := fromInspect(inspectRowOf(t, c.inspect()), "tierlb")
	if !ok {
		t.Fatalf("fake container %s not running", c.name)
	}
	return r
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestBuildViewAddressChoice(t *testing.T) {
	proxy := &self{ID: "proxy", Networks: []endpoint{newEndpoint("app", "id-app", netip.Addr{}), newEndpoint("db", "id-db", netip.Addr{})}}
	svc := map[string]string{"tierlb.service": "app", "tierlb.port": "8080"}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range svc {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name       string
		me         *self
		restrict   []string
		bridges    map[string]bool
		c          fakeCtr
		wantAddr   string
		wantNet    string
		wantReason string
	}{
		{
			name: "only shared network",
			me:   proxy, c: fakeCtr{nets: map[string]string{"web": "10.1.0.2", "app": "10.2.0.2"}, labels: svc},
			wantAddr: "10.2.0.2:8080", wantNet: "app",
		},
		{
			name: "two shared networks: first by name",
			me:   proxy, c: fakeCtr{nets: map[string]string{"db": "10.3.0.2", "app": "10.2.0.2", "zz": "10.9.0.2"}, labels: svc},
			wantAddr: "10.2.0.2:8080", wantNet: "app",
		},
		{
			name: "label override",
			me:   proxy, c: fakeCtr{nets: map[string]string{"db": "10.3.0.2", "app": "10.2.0.2"}, labels: with(map[string]string{"tierlb.network": "db"})},
			wantAddr: "10.3.0.2:8080", wantNet: "db",
		},
		{
			name: "label names a compose network without its project",
			me:   &self{ID: "p", Networks: []endpoint{newEndpoint("shop_db", "id-shop_db", netip.Addr{})}},
			c: fakeCtr{nets: map[string]string{"shop_db": "10.3.0.2"},
				labels: with(map[string]string{"tierlb.network": "db", "com.docker.compose.project": "shop"})},
			wantAddr: "10.3.0.2:8080", wantNet: "shop_db",
		},
		{
			name: "label network the proxy is not on",
			me:   proxy, c: fakeCtr{nets: map[string]string{"web": "10.1.0.2", "app": "10.2.0.2"}, labels: with(map[string]string{"tierlb.network": "web"})},
			wantNet: "web", wantReason: "the proxy is not on network web (proxy networks: app db)",
		},
		{
			name: "label network the container is not on",
			me:   proxy, c: fakeCtr{nets: map[string]string{"app": "10.2.0.2"}, labels: with(map[string]string{"tierlb.network": "db"})},
			wantReason: "tierlb.network=db but the container is not on that network (it is on app)",
		},
		{
			name: "no shared network",
			me:   proxy, c: fakeCtr{nets: map[string]string{"web": "10.1.0.2"}, labels: svc},
			wantReason: "no network shared with the proxy: the container is on web",
		},
		{
			name: "docker.networks restricts",
			me:   proxy, restrict: []string{"db"}, c: fakeCtr{nets: map[string]string{"app": "10.2.0.2", "db": "10.3.0.2"}, labels: svc},
			wantAddr: "10.3.0.2:8080", wantNet: "db",
		},
		{
			name: "on the host: first bridge by name",
			me:   &self{OnHost: true}, bridges: map[string]bool{"id-b2": true, "id-b1": true},
			c:        fakeCtr{nets: map[string]string{"overlay": "10.0.9.2", "b2": "10.0.2.2", "b1": "10.0.1.2"}, labels: svc},
			wantAddr: "10.0.1.2:8080", wantNet: "b1",
		},
		{
			name: "on the host: no bridge",
			me:   &self{OnHost: true}, bridges: map[string]bool{},
			c:          fakeCtr{nets: map[string]string{"overlay": "10.0.9.2"}, labels: svc},
			wantReason: "network overlay is not a bridge network",
		},
		{
			name: "no port",
			me:   proxy, c: fakeCtr{nets: map[string]string{"app": "10.2.0.2"}, labels: map[string]string{"tierlb.service": "app"}, exposed: []string{"80/tcp", "443/tcp"}},
			wantReason: "no port: the container exposes 80, 443",
		},
		{
			name: "only exposed port",
			me:   proxy, c: fakeCtr{nets: map[string]string{"app": "10.2.0.2"}, labels: map[string]string{"tierlb.service": "app"}, exposed: []string{"53/udp", "9000/tcp"}},
			wantAddr: "10.2.0.2:9000", wantNet: "app",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.c.id, tt.c.name, tt.c.created = "c1", "app-1", t0
			r := reach{me: tt.me, prefix: "tierlb", restrict: tt.restrict, bridges: tt.bridges}
			// Rebuild twenty times: the choice must never depend on map order.
			for range 20 {
				v := buildView(Config{}, []ServiceSelector{{Name: "app"}}, r, []*ctr{record(t, tt.c)})
				if len(v.explain) != 1 {
					t.Fatalf("explain = %+v, want one entry", v.explain)
				}
				e := v.explain[0]
				if tt.wantReason != "" {
					if e.Routed || !strings.Contains(e.Reason, tt.wantReason) || len(v.specs["app"]) != 0 {
						t.Fatalf("got %+v, want not routed because %q", e, tt.wantReason)
					}
					if e.Network != tt.wantNet {
						t.Fatalf("network = %q, want %q", e.Network, tt.wantNet)
					}
					continue
				}
				specs := v.specs["app"]
				if !e.Routed || len(specs) != 1 || specs[0].Address != tt.wantAddr || specs[0].Network != tt.wantNet || e.Address != tt.wantAddr {
					t.Fatalf("got %+v / %+v, want %s on %s", e, specs, tt.wantAddr, tt.wantNet)
				}
			}
		})
	}
}

func TestBuildViewMembership(t *testing.T) {
	me := &self{ID: "proxy", Networks: []endpoint{newEndpoint("app", "id-app", netip.Addr{})}}
	r := reach{me: me, prefix: "tierlb"}
	net := map[string]string{"app": "10.2.0.2"}
	compose := map[string]string{"com.docker.compose.service": "app", "com.docker.compose.project": "shop"}
	tests := []struct {
		name       string
		cfg        Config
		sels       []ServiceSelector
		c          fakeCtr
		wantSvc    string
		wantDrain  string
		wantReason string
	}{
		{name: "label service", sels: []ServiceSelector{{Name: "app"}}, c: fakeCtr{labels: map[string]string{"tierlb.service": "app", "tierlb.port": "80"}}, wantSvc: "app"},
		{name: "service label mapped to another name", sels: []ServiceSelector{{Name: "front", Service: "web"}}, c: fakeCtr{labels: map[string]string{"tierlb.service": "web", "tierlb.port": "80"}}, wantSvc: "front"},
		{
			name: "compose selector needs opt-in by default",
			sels: []ServiceSelector{{Name: "app", Selector: map[string]string{"com.docker.compose.service": "app"}, Port: 80}},
			c:    fakeCtr{labels: compose}, wantReason: "not exposed",
		},
		{
			name: "compose selector with enable",
			sels: []ServiceSelector{{Name: "app", Selector: map[string]string{"com.docker.compose.service": "app", "com.docker.compose.project": "shop"}, Port: 80}},
			c:    fakeCtr{labels: map[string]string{"com.docker.compose.service": "app", "com.docker.compose.project": "shop", "tierlb.enable": "true"}}, wantSvc: "app",
		},
		{
			name: "compose selector exposed by default",
			cfg:  Config{ExposedByDefault: true},
			sels: []ServiceSelector{{Name: "app", Selector: map[string]string{"com.docker.compose.service": "app"}, Port: 80}},
			c:    fakeCtr{labels: compose}, wantSvc: "app",
		},
		{
			name: "enable=false wins",
			cfg:  Config{ExposedByDefault: true},
			sels: []ServiceSelector{{Name: "app"}},
			c:    fakeCtr{labels: map[string]string{"tierlb.service": "app", "tierlb.enable": "false"}}, wantReason: "tierlb.enable=false",
		},
		{
			name: "bad label", sels: []ServiceSelector{{Name: "app"}},
			c: fakeCtr{labels: map[string]string{"tierlb.service": "app", "tierlb.weight": "lots"}}, wantReason: `label tierlb.weight="lots": want an integer`,
		},
		{
			name: "unconfigured service", sels: []ServiceSelector{{Name: "app"}},
			c: fakeCtr{labels: map[string]string{"tierlb.service": "other", "tierlb.port": "80"}}, wantReason: "service other is not configured",
		},
		{
			name: "configured but selector differs",
			sels: []ServiceSelector{{Name: "app", Service: "app", Selector: map[string]string{"com.docker.compose.project": "prod"}}},
			c:    fakeCtr{labels: map[string]string{"tierlb.service": "app", "tierlb.port": "80"}}, wantReason: "its docker selector does not match",
		},
		{
			name: "listen ignored without label_services", sels: nil,
			c: fakeCtr{labels: map[string]string{"tierlb.service": "x", "tierlb.listen": ":81", "tierlb.port": "80"}}, wantReason: "docker.label_services is false",
		},
		{
			name: "label-declared service", cfg: Config{LabelServices: true},
			c: fakeCtr{labels: map[string]string{"tierlb.service": "x", "tierlb.listen": ":81", "tierlb.port": "80"}}, wantSvc: "x",
		},
		{
			name: "stopping drains", sels: []ServiceSelector{{Name: "app"}},
			c: fakeCtr{labels: map[string]string{"tierlb.service": "app", "tierlb.port": "80"}}, wantSvc: "app", wantDrain: "container stopping",
		},
		{
			name: "docker health starting", sels: []ServiceSelector{{Name: "app", DockerHealth: true}},
			c: fakeCtr{labels: map[string]string{"tierlb.service": "app", "tierlb.port": "80"}, health: "starting"}, wantReason: "docker health is starting",
		},
		{
			name: "docker health healthy", sels: []ServiceSelector{{Name: "app", DockerHealth: true}},
			c: fakeCtr{labels: map[string]string{"tierlb.service": "app", "tierlb.port": "80"}, health: "healthy"}, wantSvc: "app",
		},
		{
			name: "health ignored unless type docker", sels: []ServiceSelector{{Name: "app"}},
			c: fakeCtr{labels: map[string]string{"tierlb.service": "app", "tierlb.port": "80"}, health: "unhealthy"}, wantSvc: "app",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.c.id, tt.c.name, tt.c.created, tt.c.nets = "c1", "app-1", t0, net
			rec := record(t, tt.c)
			rec.Stopping = tt.wantDrain == "container stopping"
			v := buildView(tt.cfg, tt.sels, r, []*ctr{rec})
			if len(v.explain) != 1 {
				t.Fatalf("explain = %+v, want one entry", v.explain)
			}
			e := v.explain[0]
			if tt.wantReason != "" {
				if e.Routed || !strings.Contains(e.Reason, tt.wantReason) {
					t.Fatalf("got %+v, want not routed because %q", e, tt.wantReason)
				}
				return
			}
			specs := v.specs[tt.wantSvc]
			if !e.Routed || e.Service != tt.wantSvc || len(specs) != 1 {
				t.Fatalf("got %+v, specs %+v; want routed in %s", e, v.specs, tt.wantSvc)
			}
			if specs[0].Drain != tt.wantDrain || specs[0].ID != "app-1" || specs[0].Container != "c1" || specs[0].Weight != 1 {
				t.Fatalf("spec %+v", specs[0])
			}
		})
	}
}

func TestDeclareServicesOldestWins(t *testing.T) {
	r := reach{me: &self{ID: "p", Networks: []endpoint{newEndpoint("app", "id-app", netip.Addr{})}}, prefix: "tierlb"}
	mk := func(id, name string, age time.Duration, balance string) *ctr {
		return record(t, fakeCtr{id: id, name: name, created: t0.Add(-age), nets: map[string]string{"app": "10.0.0." + id[1:]},
			labels: map[string]string{"tierlb.service": "x", "tierlb.listen": ":81", "tierlb.port": "80", "tierlb.balance": balance}})
	}
	ctrs := []*ctr{mk("c3", "x-3", time.Minute, "random2"), mk("c1", "x-1", time.Hour, "leastconn"), mk("c2", "x-2", time.Hour, "leastconn")}
	cfg := Config{LabelServices: true}
	for range 10 { // the winner never depends on input order
		v := buildView(cfg, nil, r, ctrs)
		if len(v.decls) != 1 {
			t.Fatalf("decls = %+v", v.decls)
		}
		d := v.decls[0]
		// c1 and c2 are equally old: the smaller ID wins the tie.
		if d.Name != "x" || d.Listen != ":81" || d.Container != "x-1" || d.Settings["balance"] != "leastconn" {
			t.Fatalf("decl = %+v", d)
		}
		if len(d.Conflicts) != 1 || !strings.Contains(d.Conflicts[0], "x-3 disagrees with the oldest replica x-1 (tierlb.balance=random2, not leastconn)") {
			t.Fatalf("conflicts = %q", d.Conflicts)
		}
		if len(v.specs["x"]) != 3 {
			t.Fatalf("specs = %+v, want all three replicas routed", v.specs["x"])
		}
		for _, e := range v.explain {
			if (e.Name == "x-3") != (len(e.Warnings) == 1) {
				t.Fatalf("warnings on %s: %q", e.Name, e.Warnings)
			}
		}
		ctrs[0], ctrs[2] = ctrs[2], ctrs[0]
	}
}

func TestDeclaredNameTakenByConfig(t *testing.T) {
	r := reach{me: &self{ID: "p", Networks: []endpoint{newEndpoint("app", "id-app", netip.Addr{})}}, prefix: "tierlb"}
	c := record(t, fakeCtr{id: "c1", name: "x-1", created: t0, nets: map[string]string{"app": "10.0.0.1"},
		labels: map[string]string{"tierlb.service": "x", "tierlb.listen": ":81", "tierlb.port": "80"}})
	v := buildView(Config{LabelServices: true}, []ServiceSelector{{Name: "x"}}, r, []*ctr{c})
	if len(v.decls) != 0 || len(v.specs["x"]) != 1 {
		t.Fatalf("decls %+v specs %+v: the config's x must win and still route the replica", v.decls, v.specs)
	}
	if w := v.explain[0].Warnings; len(w) != 1 || !strings.Contains(w[0], "declared in the config") {
		t.Fatalf("warnings = %q", w)
	}
}

// TestStaticOnlyServiceTakesNoContainers: a configured service without a
// docker block owns its name, but labels cannot add a container to it.
func TestStaticOnlyServiceTakesNoContainers(t *testing.T) {
	r := reach{me: &self{ID: "p", Networks: []endpoint{newEndpoint("app", "id-app", netip.Addr{})}}, prefix: "tierlb"}
	c := record(t, fakeCtr{id: "c1", name: "x-1", created: t0, nets: map[string]string{"app": "10.0.0.1"},
		labels: map[string]string{"tierlb.service": "x", "tierlb.listen": ":81", "tierlb.port": "80"}})
	v := buildView(Config{LabelServices: true, ExposedByDefault: true}, []ServiceSelector{{Name: "x", StaticOnly: true}}, r, []*ctr{c})
	if len(v.decls) != 0 || len(v.specs["x"]) != 0 {
		t.Fatalf("decls %+v specs %+v: a static-only service takes neither a declaration nor a replica", v.decls, v.specs)
	}
	e := v.explain[0]
	if e.Routed || !strings.Contains(e.Reason, "static backends only") {
		t.Fatalf("explanation %+v, want not routed because x is static only", e)
	}
	if len(e.Warnings) != 1 || !strings.Contains(e.Warnings[0], "declared in the config") {
		t.Fatalf("warnings = %q", e.Warnings)
	}
}
