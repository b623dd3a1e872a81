package config

import (
	"fmt"
	"log/slog"
	"maps"
	"net/netip"

	"github.com/tierlb/tierlb/backends"
	"github.com/tierlb/tierlb/backends/docker"
	"github.com/tierlb/tierlb/health"
	"github.com/tierlb/tierlb/proxy"
	"github.com/tierlb/tierlb/proxy/udp"
)

// The conversions below run on a validated Config, so they cannot fail on
// anything validate accepts; the errors they still return guard against the
// two drifting apart.

// ProxyConfig is a service's data-path settings.
func (s *ServiceConfig) ProxyConfig(accessLog bool) (proxy.Config, error) {
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
			Connect:     s.Timeouts.Connect,
			Idle:        s.Timeouts.Idle,
			HalfClose:   s.Timeouts.HalfClose,
			ClientHello: s.Timeouts.ClientHello,
			FirstData:   s.Timeouts.FirstData,
		},
		SNI:                 s.SNI,
		Retries:             s.Retries,
		MaxConns:            s.MaxConns,
		MaxConnsPerClient:   s.MaxConnsPerClient,
		DeferDial:           s.DeferDial,
		CloseOnBackendDown:  s.OnBackendDown == "close",
		ProxyProtocol:       s.ProxyProtocol,
		AcceptProxyProtocol: accept,
		Allow:               allow,
		ReusePort:           s.ReusePort,
		ZeroCopy:            s.ZeroCopy != "off",
		AccessLog:           accessLog,
	}, nil
}

// UDPConfig is a UDP service's data-path settings.
func (s *ServiceConfig) UDPConfig(accessLog bool) (udp.Config, error) {
	allow, err := prefixes(s.Allow)
	if err != nil {
		return udp.Config{}, fmt.Errorf("service %s: allow: %w", s.Name, err)
	}
	c := udp.Config{
		Name:      s.Name,
		Listen:    s.Listen,
		Allow:     allow,
		ReusePort: s.ReusePort,
		AccessLog: accessLog,
	}
	if u := s.UDP; u != nil {
		c.SessionTimeout, c.MaxSessions, c.Responses = u.SessionTimeout, u.MaxSessions, u.Responses
	}
	return c, nil
}

// HealthMonitorConfig is the service's health settings for the health
// package, with the protocol its checks run over.
func (s *ServiceConfig) HealthMonitorConfig() health.Config {
	hc := s.Health.MonitorConfig()
	hc.Network = s.Protocol
	return hc
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

// MonitorConfig is a service's health settings for the health package.
func (h *HealthConfig) MonitorConfig() health.Config {
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

// SetOptions are the settings a service's backend Set is built with.
// healthType is the check type the monitor really runs (docker turns into
// none without Docker discovery): with active checks a new replica joins
// only once it has passed one, so a container that is still starting up
// never gets a connection it would refuse.
func (s *ServiceConfig) SetOptions(healthType string) backends.SetOptions {
	return backends.SetOptions{
		SlowStart:          s.SlowStart,
		MaxConnsPerBackend: s.MaxConnsPerBackend,
		HoldUntilChecked:   healthType != health.TypeNone,
	}
}

// StaticSpecs turns a service's static backends into Specs.
func (s *ServiceConfig) StaticSpecs() ([]backends.Spec, error) {
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

// SlogLevel maps log.level onto slog.
func (l *LogConfig) SlogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// ProviderConfig is the Docker provider's view of the docker section.
func (d *DockerConfig) ProviderConfig() docker.Config {
	return docker.Config{
		Host:             d.Host,
		LabelPrefix:      d.LabelPrefix,
		ExposedByDefault: d.ExposedByDefault,
		Networks:         append([]string(nil), d.Networks...),
		ResyncInterval:   d.ResyncInterval,
		LabelServices:    d.LabelServices,
		Swarm:            d.Swarm,
		SwarmPoll:        d.SwarmPoll,
	}
}

// DockerSelectors lists one selector per configured service: those with a
// docker backend block select their replicas, the others only take their
// name, so that no container can join a static-only service or declare one
// of the same name. Label-declared services are not in it: the provider
// routes their replicas itself, and a selector would make it treat the
// name as configured and drop the declaration.
func (c *Config) DockerSelectors() []docker.ServiceSelector {
	out := make([]docker.ServiceSelector, 0, len(c.Services))
	for _, s := range c.Services {
		d := s.Backends.Docker
		if d == nil {
			out = append(out, docker.ServiceSelector{Name: s.Name, StaticOnly: true})
			continue
		}
		out = append(out, docker.ServiceSelector{
			Name:         s.Name,
			Service:      d.Service,
			Selector:     maps.Clone(d.Selector),
			Port:         d.Port,
			DockerHealth: s.Health.Type == health.TypeDocker,
		})
	}
	return out
}

// FrontConfig is the data-path settings of the listener that services
// sharing a listen address (each with sni) share: what applies before a
// connection is routed, which validation makes them agree on. Its name,
// in logs and metrics, is the address.
func FrontConfig(members []ServiceConfig, accessLog bool) (proxy.Config, error) {
	if len(members) == 0 {
		return proxy.Config{}, fmt.Errorf("a shared listen address without services")
	}
	s := &members[0]
	la, err := ParseListenAddr(s.Listen)
	if err != nil {
		return proxy.Config{}, fmt.Errorf("service %s: listen: %w", s.Name, err)
	}
	accept, err := prefixes(s.AcceptProxyProto)
	if err != nil {
		return proxy.Config{}, fmt.Errorf("service %s: accept_proxy_protocol: %w", s.Name, err)
	}
	return proxy.Config{
		Name:                la.String(),
		Listen:              s.Listen,
		Timeouts:            proxy.Timeouts{ClientHello: s.Timeouts.ClientHello},
		AcceptProxyProtocol: accept,
		ReusePort:           s.ReusePort,
		AccessLog:           accessLog,
	}, nil
}
