package main

import (
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/tierlb/tierlb/backends"
	"github.com/tierlb/tierlb/backends/docker"
	"github.com/tierlb/tierlb/internal/testkit"
)

// TestDeclareServicesFollowsLabelServices drives the supervisor as the
// provider does: a declaration starts a service only while
// docker.label_services is on, and withdrawing it stops the service.
func TestDeclareServicesFollowsLabelServices(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("label_services=%t", on), func(t *testing.T) {
			b := startBackend(t, "static")
			cfg := testConfig(t, [3]string{"web", "127.0.0.1:0", b.addr()})
			cfg.Docker.LabelServices = on
			sup := runSupervisor(t, cfg)

			listen := testkit.ClosedPort(t)
			sup.DeclareServices([]docker.LabelService{
				{Name: "db", Listen: listen, Container: "db-1", Settings: map[string]string{"health.type": "none"}},
				{Name: "web", Listen: testkit.ClosedPort(t), Container: "web-1"}, // the config's name: ignored
			})
			sup.UpdateBackends("db", []backends.Spec{{ID: "db-1", Address: b.addr(), Container: "c1", Weight: 1}})
			names := func() []string {
				var out []string
				for _, s := range sup.Services() {
					out = append(out, s.Name+"@"+s.Listen)
				}
				return out
			}
			want := []string{"web@127.0.0.1:0"}
			if on {
				want = []string{"db@" + listen, "web@127.0.0.1:0"}
			}
			if got := names(); !slices.Equal(got, want) {
				t.Fatalf("services %v, want %v", got, want)
			}
			if on {
				if got := waitGreeting(t, listen); got != "static" {
					t.Errorf("db greeting %q", got)
				}
			}
			sup.DeclareServices(nil)
			if got := names(); !slices.Equal(got, []string{"web@127.0.0.1:0"}) {
				t.Fatalf("after the declaration is withdrawn: %v", got)
			}
			if c, err := net.DialTimeout("tcp", listen, time.Second); err == nil {
				c.Close()
				t.Error("db still listens")
			}
		})
	}
}
