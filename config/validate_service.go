package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/tierlb/tierlb/backends"
	"github.com/tierlb/tierlb/health"
	"github.com/tierlb/tierlb/proxy/sni"
)

// isServiceName keeps names usable as metric label values and URL path
// segments (/api/v1/services/{service}): ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$.
// A loop rather than a regexp compiled at init, whose bounded repetition
// alone holds ~20 kB for the life of the process.
func isServiceName(s string) bool {
	if len(s) == 0 || len(s) > 63 || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '_' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// validateService checks one services[] entry; path is "services[i]".
func validateService(s *ServiceConfig, path string, dockerOn bool, p *problems) {
	switch {
	case s.Name == "":
		p.add(path+".name", "missing (every service needs a name)")
	case !isServiceName(s.Name):
		p.add(path+".name", "%q is not a service name (letters, digits, '_', '.', '-'; at most 63)", s.Name)
	}
	if s.Listen == "" {
		p.add(path+".listen", "missing (host:port, IPv6 as [::]:8080)")
	} else if la, err := ParseListenAddr(s.Listen); err != nil {
		p.add(path+".listen", "%v", err)
	} else if la.IsRange() && len(s.SNI) > 0 {
		p.add(path+".listen", "%s is a port range, but the service routes by sni: services sharing a TLS port listen on one port", s.Listen)
	}
	oneOf(p, path+".protocol", s.Protocol, ProtocolTCP, ProtocolUDP)
	if _, err := backends.ParsePolicy(s.Balance); err != nil {
		p.add(path+".balance", "%v", err)
	}
	validateBackends(&s.Backends, path+".backends", dockerOn, p)
	validateHealth(&s.Health, path+".health", s.Protocol, dockerOn, p)
	if s.IsUDP() {
		validateUDP(s, path, p)
	} else {
		validateTCP(s, path, p)
	}
	if s.Health.Type == "docker" && len(s.Backends.Static) > 0 {
		// A static address has no container whose HEALTHCHECK could be
		// read: it would stay down for ever.
		p.add(path+".health.type", "docker reads each container's HEALTHCHECK, but backends.static lists addresses with no container (use tcp, http or send-expect, or only docker backends)")
	}
	nonNegative(p, path+".slow_start", s.SlowStart)
	nonNegative(p, path+".max_conns_per_backend", s.MaxConnsPerBackend)
	for i, c := range s.Allow {
		if _, err := parsePrefix(c); err != nil {
			p.add(fmt.Sprintf("%s.allow[%d]", path, i), "%v", err)
		}
	}
}

func validateBackends(b *BackendsConfig, path string, dockerOn bool, p *problems) {
	if len(b.Static) == 0 && b.Docker == nil {
		p.add(path, "no static backends and no docker selector")
	}
	seen := map[string]int{}
	for i, sb := range b.Static {
		ipath := fmt.Sprintf("%s.static[%d]", path, i)
		addr, err := backends.ParseAddress(sb.Address)
		if err != nil {
			p.add(ipath+".address", "%v", err)
		} else if j, dup := seen[addr]; dup {
			p.add(ipath+".address", "duplicate backend %s (also static[%d])", sb.Address, j)
		} else {
			seen[addr] = i
		}
		if sb.Weight < 0 || sb.Weight > backends.MaxWeight {
			p.add(ipath+".weight", "%d is out of range (0-%d)", sb.Weight, backends.MaxWeight)
		}
		if sb.Priority < 0 || sb.Priority > backends.MaxPriority {
			p.add(ipath+".priority", "%d is out of range (0-%d)", sb.Priority, backends.MaxPriority)
		}
	}
	if d := b.Docker; d != nil {
		dpath := path + ".docker"
		if !dockerOn {
			p.add(dpath, "a docker selector needs Docker discovery, but docker.enabled is false")
		}
		if d.Service == "" && len(d.Selector) == 0 {
			p.add(dpath, "needs service or a non-empty selector")
		}
		for k := range d.Selector {
			if k == "" {
				p.add(dpath+".selector", "empty label name")
			}
		}
		if d.Port < 0 || d.Port > 65535 {
			p.add(dpath+".port", "port %d is out of range (1-65535, or 0 for the tierlb.port label)", d.Port)
		}
	}
}

// validateTCP checks what only a TCP service has.
func validateTCP(s *ServiceConfig, path string, p *problems) {
	positive(p, path+".timeouts.connect", s.Timeouts.Connect)
	positive(p, path+".timeouts.idle", s.Timeouts.Idle)
	positive(p, path+".timeouts.half_close", s.Timeouts.HalfClose)
	positive(p, path+".timeouts.client_hello", s.Timeouts.ClientHello)
	positive(p, path+".timeouts.first_data", s.Timeouts.FirstData)
	for i, name := range s.SNI {
		if _, err := sni.Normalize(name); err != nil {
			p.add(fmt.Sprintf("%s.sni[%d]", path, i), "%q: %v", name, errors.Unwrap(err))
		}
	}
	nonNegative(p, path+".retries", s.Retries)
	nonNegative(p, path+".max_conns", s.MaxConns)
	nonNegative(p, path+".max_conns_per_client", s.MaxConnsPerClient)
	oneOf(p, path+".on_backend_down", s.OnBackendDown, "keep", "close")
	oneOf(p, path+".proxy_protocol", s.ProxyProtocol, "", "v1", "v2")
	oneOf(p, path+".zero_copy", s.ZeroCopy, "auto", "off")
	for i, c := range s.AcceptProxyProto {
		if _, err := parsePrefix(c); err != nil {
			p.add(fmt.Sprintf("%s.accept_proxy_protocol[%d]", path, i), "%v", err)
		}
	}
}

// validateUDP checks what only a UDP service has.
func validateUDP(s *ServiceConfig, path string, p *problems) {
	if u := s.UDP; u != nil {
		positive(p, path+".udp.session_timeout", u.SessionTimeout)
		nonNegative(p, path+".udp.max_sessions", u.MaxSessions)
		nonNegative(p, path+".udp.responses", u.Responses)
	}
	for i, sb := range s.Backends.Static {
		if _, err := backends.ParseAddress(sb.Address); err != nil {
			continue // reported by validateBackends
		}
		if _, err := netip.ParseAddrPort(sb.Address); err != nil {
			// A session's socket is connected once, from the loop; a
			// name would need resolving there.
			p.add(fmt.Sprintf("%s.backends.static[%d].address", path, i),
				"%q: a UDP backend is an IP address and port (IPv6 as [::1]:53), not a host name", sb.Address)
		}
	}
}

func validateHealth(h *HealthConfig, path, protocol string, dockerOn bool, p *problems) {
	before := len(p.errs)
	oneOf(p, path+".type", h.Type, "tcp", "http", "send-expect", "docker", "none")
	if h.Type == "docker" && !dockerOn {
		p.add(path+".type", "docker health needs Docker discovery, but docker.enabled is false")
	}
	positive(p, path+".interval", h.Interval)
	positive(p, path+".timeout", h.Timeout)
	if h.Rise < 1 {
		p.add(path+".rise", "must be at least 1, got %d", h.Rise)
	}
	if h.Fall < 1 {
		p.add(path+".fall", "must be at least 1, got %d", h.Fall)
	}
	if !strings.HasPrefix(h.HTTP.Path, "/") {
		p.add(path+".http.path", "%q must start with /", h.HTTP.Path)
	}
	if _, err := health.ParseStatusRanges(h.HTTP.ExpectStatus); err != nil {
		p.add(path+".http.expect_status", "%v", err)
	}
	if _, err := health.ParseEscapes(h.Send); err != nil {
		p.add(path+".send", "%v", err)
	}
	if _, err := health.ParseExpect(h.Expect); err != nil {
		p.add(path+".expect", "%v", err)
	}
	if h.Type == "send-expect" && h.Send == "" && h.Expect == "" {
		p.add(path+".expect", "a send-expect check needs send, expect or both")
	}
	nonNegative(p, path+".passive.max_fails", h.Passive.MaxFails)
	if h.Passive.MaxFails > 0 {
		positive(p, path+".passive.fail_timeout", h.Passive.FailTimeout)
	}
	if len(p.errs) > before {
		return
	}
	// The health package has the last word on what its monitor accepts
	// (the Host header's syntax, for one). Its messages start with the key
	// under the service, "health.http.host: ...", documented for this use.
	mc := h.MonitorConfig()
	mc.Network = protocol
	for _, err := range Problems(mc.Validate()) {
		key, msg, ok := strings.Cut(err.Error(), ": ")
		if !ok || !strings.HasPrefix(key, "health") {
			key, msg = "health", err.Error()
		}
		p.add(parentPath(path)+"."+key, "%s", msg)
	}
}
