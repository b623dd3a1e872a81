package main

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/tierlb/tierlb/backends"
	"github.com/tierlb/tierlb/backends/docker"
	"github.com/tierlb/tierlb/config"
	"github.com/tierlb/tierlb/internal/testkit"
)

// udpConfig is a config of UDP services (name → listen and backend).
func udpConfig(t *testing.T, services ...[3]string) *config.Config {
	t.Helper()
	text := "admin: {listen: ''}\ndocker: {enabled: 'false'}\nservices:\n"
	for _, s := range services {
		text += fmt.Sprintf("  - {name: %s, listen: '%s', protocol: udp, backends: {static: ['%s']}}\n", s[0], s[1], s[2])
	}
	cfg, err := config.Load(config.Source{File: writeFile(t, "c.yaml", text)})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Shutdown.DrainTimeout = time.Minute
	return cfg
}

// A removed UDP service keeps its socket while its sessions drain, unless
// a new service takes its address in the same reload: then it closes at
// once and the new one binds.
func TestUDPAddressHandedOver(t *testing.T) {
	ua, ub := startUDPBackend(t, "a"), startUDPBackend(t, "b")
	shared := fmt.Sprintf("127.0.0.1:%d", freeTCPAndUDPPort(t))
	sup := runSupervisor(t, udpConfig(t, [3]string{"a", shared, ua}))
	if got := askUDP(t, shared, "one"); got != "a" {
		t.Fatalf("answered by %s", got)
	}
	if err := sup.Apply(udpConfig(t, [3]string{"b", shared, ub})); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if got := askUDP(t, shared, "two"); got != "b" {
		t.Fatalf("after the hand-over answered by %s", got)
	}
}

// A label-declared UDP service may share its port number with a TCP
// service of the config.
func TestLabelDeclaredUDPService(t *testing.T) {
	tb, ub := startBackend(t, "tcp"), startUDPBackend(t, "udp")
	port := freeTCPAndUDPPort(t)
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := testConfig(t, [3]string{"web", listen, tb.addr()})
	cfg.Docker.LabelServices = true
	sup := runSupervisor(t, cfg)
	sup.DeclareServices([]docker.LabelService{{Name: "dns", Listen: listen, Container: "dns-1",
		Settings: map[string]string{"protocol": "udp", "udp.responses": "1"}}})
	sup.UpdateBackends("dns", []backends.Spec{{ID: "dns-1", Address: ub, Container: "c1", Weight: 1}})
	protocols := map[string]string{}
	for _, s := range sup.Services() {
		protocols[s.Name] = s.Protocol
	}
	if protocols["dns"] != "udp" || protocols["web"] != "tcp" {
		t.Fatalf("services %v, want dns udp and web tcp", protocols)
	}
	if got := askUDP(t, listen, "q"); got != "udp" {
		t.Fatalf("dns answered by %s", got)
	}
	if got := waitGreeting(t, listen); got != "tcp" {
		t.Fatalf("web answered %q", got)
	}
	sup.DeclareServices(nil)
	// Withdrawn: no session is open (responses: 1), so the socket goes.
	testkit.Eventually(t, 10*time.Second, "the withdrawn UDP service to free "+listen, func() bool {
		c, err := net.ListenPacket("udp", listen)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}
