package main

import (
	"testing"

	"github.com/tierlb/tierlb/config"
)

func TestReadiness(t *testing.T) {
	static := config.ServiceConfig{Name: "s", Backends: config.BackendsConfig{Static: []config.StaticBackend{{Address: "127.0.0.1:1"}}}}
	dockerOnly := config.ServiceConfig{Name: "d", Backends: config.BackendsConfig{Docker: &config.DockerSelector{Service: "d"}}}
	both := dockerOnly
	both.Backends.Static = static.Backends.Static
	notSynced := func() (bool, string) { return false, "waiting for the first docker sync" }
	synced := func() (bool, string) { return true, "" }
	engineDown := func() string { return "docker engine at unix:///x unreachable since T: EOF" }
	engineUp := func() string { return "" }
	tests := []struct {
		name     string
		services []config.ServiceConfig
		synced   func() (bool, string)
		engine   func() string
		draining bool
		ok       bool
		why      string
	}{
		{"no discovery", []config.ServiceConfig{static}, nil, nil, false, true, ""},
		{"static routes before the sync", []config.ServiceConfig{static, both}, notSynced, engineDown, false, true,
			"static backends serve; docker discovery: waiting for the first docker sync"},
		{"docker only waits for the sync", []config.ServiceConfig{static, dockerOnly}, notSynced, engineUp, false, false, "waiting for the first docker sync"},
		{"no services: label services wait for the sync", nil, notSynced, engineUp, false, false, "waiting for the first docker sync"},
		{"synced", []config.ServiceConfig{dockerOnly}, synced, engineUp, false, true, ""},
		{"engine down after the sync", []config.ServiceConfig{dockerOnly}, synced, engineDown, false, true,
			"docker engine at unix:///x unreachable since T: EOF; serving the last known backends"},
		{"draining", []config.ServiceConfig{static}, synced, engineUp, true, false, "draining"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &readiness{}
			if ok, why := r.Ready(); ok || why != "listeners not bound yet" {
				t.Errorf("before binding: %t %q", ok, why)
			}
			if tt.synced != nil {
				r.setDiscovery(tt.synced, tt.engine)
			}
			r.setConfig(&config.Config{Services: tt.services})
			r.setBound()
			if tt.draining {
				r.setDraining()
			}
			if ok, why := r.Ready(); ok != tt.ok || why != tt.why {
				t.Errorf("Ready() = %t %q, want %t %q", ok, why, tt.ok, tt.why)
			}
		})
	}
}
