package main

import (
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/tierlb/tierlb/backends"
	"github.com/tierlb/tierlb/health"
	"github.com/tierlb/tierlb/proxy"
)

// The conversions below run on a validated Config, so they cannot fail on
// anything validate accepts; the errors they still return guard against the
// two drifting apart.

// proxyConfig is a service's data-path settings.
func proxyConfig(s *ServiceConfig, accessLog bool) (proxy.Config, error) {
	allow, err := prefixes(s.Allow)
	if err != nil {
		return proxy.Config{}, fmt.Errorf("service %s: allow: %w", s.Name, err)
	}
	accept, err := prefixes(s.AcceptProxyProto)
	if err != nil {
		return proxy.Config{}, fmt.Errorf("service %s: accept_proxy_protocol: %w", s.Name, err)
	}
	return proxy.Config{
		Name:   s.Name,
		Listen: s.Listen,
		Timeouts: proxy.Timeouts{
			Connect:   s.Timeouts.Connect,
			Idle:      s.Timeouts.Idle,
			HalfClose: s.Timeouts.HalfClose,
		},
		Retries:             s.Retries,
		MaxConns:            s.MaxConns,
		CloseOnBackendDown:  s.OnBackendDown == "close",
		ProxyProtocol:       s.ProxyProtocol,
		AcceptProxyProtocol: accept,
		Allow:               allow,
		ReusePort:           s.ReusePort,
		ZeroCopy:            s.ZeroCopy != "off",
		AccessLog:           accessLog,
	}, nil
}

func prefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		p, err := parsePrefix(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// healthConfig is a service's health settings for the health package.
func healthConfig(h *HealthConfig) health.Config {
	return health.Config{
		Type:             h.Type,
		Interval:         h.Interval,
		Timeout:          h.Timeout,
		Rise:             h.Rise,
		Fall:             h.Fall,
		HTTPPath:         h.HTTP.Path,
		HTTPHost:         h.HTTP.Host,
		HTTPExpectStatus: h.HTTP.ExpectStatus,
		Send:             h.Send,
		Expect:           h.Expect,
		Passive: health.PassiveConfig{
			MaxFails:    h.Passive.MaxFails,
			FailTimeout: h.Passive.FailTimeout,
		},
	}
}

// setOptions are the settings a service's backend Set is built with. A
// change of these (or of the policy) needs a new Set. healthType is the
// check type the monitor really runs (see deps.healthConfig): with active
// checks a new replica joins only once it has passed one, so a container
// that is still starting up never gets a connection it would refuse.
func setOptions(s *ServiceConfig, healthType string) backends.SetOptions {
	return backends.SetOptions{
		SlowStart:          s.SlowStart,
		MaxConnsPerBackend: s.MaxConnsPerBackend,
		HoldUntilChecked:   healthType != health.TypeNone,
	}
}

// staticSpecs turns a service's static backends into Specs.
func staticSpecs(s *ServiceConfig) ([]backends.Spec, error) {
	list := make([]backends.StaticBackend, len(s.Backends.Static))
	for i, b := range s.Backends.Static {
		list[i] = backends.StaticBackend(b)
	}
	specs, err := backends.StaticSpecs(list)
	if err != nil {
		return nil, fmt.Errorf("service %s: %w", s.Name, err)
	}
	return specs, nil
}

// logLevel maps log.level onto slog.
func logLevel(s string) slog.Level {
	switch s {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}
