package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tierlb/tierlb/backends"
)

// serviceNameRE keeps names usable as metric label values and URL path
// segments (/api/v1/services/{service}).
var serviceNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// validateService checks one services[] entry; path is "services[i]".
func validateService(s *ServiceConfig, path string, dockerOn bool, p *problems) {
	switch {
	case s.Name == "":
		p.add(path+".name", "missing (every service needs a name)")
	case !serviceNameRE.MatchString(s.Name):
		p.add(path+".name", "%q is not a service name (letters, digits, '_', '.', '-'; at most 63)", s.Name)
	}
	if s.Listen == "" {
		p.add(path+".listen", "missing (host:port, IPv6 as [::]:8080)")
	} else if _, err := parseListenAddr(s.Listen); err != nil {
		p.add(path+".listen", "%v", err)
	}
	if _, err := backends.ParsePolicy(s.Balance); err != nil {
		p.add(path+".balance", "%v", err)
	}
	validateBackends(&s.Backends, path+".backends", dockerOn, p)
	validateHealth(&s.Health, path+".health", dockerOn, p)
	nonNegative(p, path+".slow_start", s.SlowStart)
	positive(p, path+".timeouts.connect", s.Timeouts.Connect)
	positive(p, path+".timeouts.idle", s.Timeouts.Idle)
	positive(p, path+".timeouts.half_close", s.Timeouts.HalfClose)
	nonNegative(p, path+".retries", s.Retries)
	nonNegative(p, path+".max_conns", s.MaxConns)
	nonNegative(p, path+".max_conns_per_backend", s.MaxConnsPerBackend)
	oneOf(p, path+".on_backend_down", s.OnBackendDown, "keep", "close")
	oneOf(p, path+".proxy_protocol", s.ProxyProtocol, "", "v1", "v2")
	oneOf(p, path+".zero_copy", s.ZeroCopy, "auto", "off")
	for i, c := range s.AcceptProxyProto {
		if _, err := parsePrefix(c); err != nil {
			p.add(fmt.Sprintf("%s.accept_proxy_protocol[%d]", path, i), "%v", err)
		}
	}
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
		addr, err := parseBackendAddr(sb.Address)
		if err != nil {
			p.add(ipath+".address", "%v", err)
		} else if j, dup := seen[addr]; dup {
			p.add(ipath+".address", "duplicate backend %s (also static[%d])", sb.Address, j)
		} else {
			seen[addr] = i
		}
		nonNegative(p, ipath+".weight", sb.Weight)
		nonNegative(p, ipath+".priority", sb.Priority)
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

func validateHealth(h *HealthConfig, path string, dockerOn bool, p *problems) {
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
	if _, err := parseStatusRanges(h.HTTP.ExpectStatus); err != nil {
		p.add(path+".http.expect_status", "%v", err)
	}
	if _, err := unescapeGo(h.Send); err != nil {
		p.add(path+".send", "%v", err)
	}
	if h.Type == "send-expect" && h.Expect == "" {
		p.add(path+".expect", "missing: a send-expect check needs the reply text (or re:REGEX) to expect")
	}
	if re, ok := strings.CutPrefix(h.Expect, "re:"); ok {
		if _, err := regexp.Compile(re); err != nil {
			p.add(path+".expect", "bad regular expression: %v", err)
		}
	}
	nonNegative(p, path+".passive.max_fails", h.Passive.MaxFails)
	if h.Passive.MaxFails > 0 {
		positive(p, path+".passive.fail_timeout", h.Passive.FailTimeout)
	}
}

// statusRange is an inclusive range of HTTP status codes.
type statusRange struct{ Lo, Hi int }

// parseStatusRanges parses "200", "200-399" or a comma list of those.
func parseStatusRanges(s string) ([]statusRange, error) {
	var out []statusRange
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		if !isRange {
			hi = lo
		}
		l, err1 := strconv.Atoi(strings.TrimSpace(lo))
		h, err2 := strconv.Atoi(strings.TrimSpace(hi))
		if err1 != nil || err2 != nil || l < 100 || h > 599 || l > h {
			return nil, fmt.Errorf("%q is not a status code or range like 200-399 (100-599)", s)
		}
		out = append(out, statusRange{l, h})
	}
	return out, nil
}

// unescapeGo interprets Go escape sequences (\r\n, \x00, \u00e9) in s; a
// bare double quote stands for itself.
func unescapeGo(s string) (string, error) {
	var b strings.Builder
	orig := s
	for s != "" {
		if s[0] == '"' {
			b.WriteByte('"')
			s = s[1:]
			continue
		}
		r, multibyte, tail, err := strconv.UnquoteChar(s, '"')
		if err != nil {
			return "", fmt.Errorf("%q has a bad escape sequence", orig)
		}
		if r < utf8.RuneSelf || multibyte {
			b.WriteRune(r)
		} else {
			b.WriteByte(byte(r)) // \xNN is one raw byte
		}
		s = tail
	}
	return b.String(), nil
}
