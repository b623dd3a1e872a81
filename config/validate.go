package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/tierlb/tierlb/handover"
)

// validate checks everything the decoder could not: allowed values, ranges,
// addresses, and rules that span keys (duplicate names and listen addresses,
// a service needing some backends). Each problem is added to p with its key
// path; nothing stops at the first.
func validate(c *Config, p *problems) {
	if c.Admin.Listen != "" {
		if la, err := ParseListenAddr(c.Admin.Listen); err != nil {
			p.add("admin.listen", "%v", err)
		} else if la.IsRange() {
			p.add("admin.listen", "%s is a port range; want one port", c.Admin.Listen)
		}
	}
	oneOf(p, "log.level", c.Log.Level, "debug", "info", "warn", "error")
	oneOf(p, "log.format", c.Log.Format, "text", "json")
	nonNegative(p, "shutdown.drain_timeout", c.Shutdown.DrainTimeout)
	if c.Engine.Loops < 0 || c.Engine.Loops > MaxLoops {
		p.add("engine.loops", "%d is out of range (0-%d; 0 means one per core)", c.Engine.Loops, MaxLoops)
	}
	nonNegative(p, "config_watch", c.ConfigWatch)
	validateDocker(&c.Docker, p)
	validateHandover(&c.Handover, p)
	if len(c.Services) == 0 && !c.Docker.LabelServicesPossible() {
		p.add("services", "no services configured, and Docker label services are off (docker.enabled: %s, docker.label_services: %t)",
			c.Docker.Enabled, c.Docker.LabelServices)
	}

	names := map[string]int{}
	listens := make([]ListenAddr, len(c.Services))
	parsed := make([]bool, len(c.Services))
	for i := range c.Services {
		s := &c.Services[i]
		path := fmt.Sprintf("services[%d]", i)
		validateService(s, path, c.Docker.Enabled != "false", p)
		if s.Name != "" {
			if j, dup := names[s.Name]; dup {
				p.add(path+".name", "duplicate service name %q (also services[%d])", s.Name, j)
			} else {
				names[s.Name] = i
			}
		}
		la, err := ParseListenAddr(s.Listen)
		if err != nil {
			continue // reported by validateService
		}
		listens[i] = la
		parsed[i] = true
		for j := range i {
			if !parsed[j] || c.Services[j].IsUDP() != s.IsUDP() {
				continue // a TCP and a UDP socket may share a port
			}
			if listens[j] == la && len(s.SNI) > 0 && len(c.Services[j].SNI) > 0 {
				validateShared(c, i, j, p)
				continue
			}
			if listens[j].Conflicts(la) {
				conflict(c, i, j, listens[j] == la, p)
				break
			}
		}
	}
}

// LabelServicesPossible reports whether Docker labels may declare services,
// so that a config without services can still be meaningful.
func (d *DockerConfig) LabelServicesPossible() bool {
	return d.Enabled != "false" && d.LabelServices
}

// isLabelPrefix matches ^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$ without a
// regexp held for the life of the process.
func isLabelPrefix(s string) bool {
	lowerOrDigit := func(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }
	if len(s) == 0 || !lowerOrDigit(s[0]) || !lowerOrDigit(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		if c := s[i]; !lowerOrDigit(c) && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

func validateDocker(d *DockerConfig, p *problems) {
	oneOf(p, "docker.enabled", d.Enabled, "auto", "true", "false")
	if d.Host != "" {
		u, err := url.Parse(d.Host)
		switch {
		case err != nil || u.Scheme == "":
			p.add("docker.host", "%q is not a Docker host URL (like unix:///var/run/docker.sock or tcp://host:2376)", d.Host)
		case !slices.Contains([]string{"unix", "tcp", "http", "https", "ssh", "npipe"}, u.Scheme):
			p.add("docker.host", "%q: scheme %q is not one of unix, tcp, http, https, ssh, npipe", d.Host, u.Scheme)
		}
	}
	if !isLabelPrefix(d.LabelPrefix) {
		p.add("docker.label_prefix", "%q is not a label prefix (lower-case letters, digits, '.' and '-')", d.LabelPrefix)
	}
	for i, n := range d.Networks {
		if strings.TrimSpace(n) == "" {
			p.add(fmt.Sprintf("docker.networks[%d]", i), "empty network name")
		}
	}
	positive(p, "docker.resync_interval", d.ResyncInterval)
	oneOf(p, "docker.swarm", d.Swarm, "auto", "true", "false")
	positive(p, "docker.swarm_poll", d.SwarmPoll)
}

func validateHandover(h *HandoverConfig, p *problems) {
	switch s := h.Socket; {
	case s == "":
	case strings.ContainsRune(s, 0) || strings.HasSuffix(s, "/"):
		p.add("handover.socket", "%q is not a file path", s)
	case len(s) > handover.MaxPathLen:
		p.add("handover.socket", "%q is %d bytes, longer than a unix socket path may be here (%d)", s, len(s), handover.MaxPathLen)
	}
}

// oneOf adds a problem unless v is one of allowed.
func oneOf(p *problems, path, v string, allowed ...string) {
	if slices.Contains(allowed, v) {
		return
	}
	want := make([]string, len(allowed))
	for i, a := range allowed {
		want[i] = a
		if a == "" {
			want[i] = `""`
		}
	}
	p.add(path, "%q is not one of %s", v, strings.Join(want, ", "))
}

func nonNegative[T int | time.Duration](p *problems, path string, v T) {
	if v < 0 {
		p.add(path, "%v is negative", v)
	}
}

func positive[T int | time.Duration](p *problems, path string, v T) {
	if v <= 0 {
		p.add(path, "must be greater than 0, got %v", v)
	}
}
