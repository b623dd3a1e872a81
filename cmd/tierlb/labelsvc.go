package main

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/tierlb/tierlb/backends/docker"
)

// labelServiceConfig turns a service declared by container labels into a
// service config through the same defaults, decoding and validation as a
// services[] entry of the file, so a label means exactly what the key of
// the same name means. Errors name the label (prefix.health.interval), not
// the config path.
func labelServiceConfig(d docker.LabelService, prefix string) (ServiceConfig, error) {
	entry := map[string]any{
		"name":   d.Name,
		"listen": d.Listen,
		// The replicas are found by the provider from the declaration; the
		// block only says "Docker backends" as it does in a file.
		"backends": map[string]any{"docker": map[string]any{"service": d.Name}},
	}
	for _, k := range slices.Sorted(maps.Keys(d.Settings)) {
		if err := setPath(entry, strings.Split(k, "."), d.Settings[k]); err != nil {
			return ServiceConfig{}, fmt.Errorf("label %s.%s: %w", prefix, k, err)
		}
	}
	cfg, p := decodeConfig(map[string]any{"services": []any{mergeOver(serviceDefaults(), entry)}})
	if len(cfg.Services) == 1 {
		validateService(&cfg.Services[0], "services[0]", true, p)
	}
	if err := p.err(); err != nil {
		return ServiceConfig{}, labelErrors(err, prefix)
	}
	if len(cfg.Services) != 1 {
		return ServiceConfig{}, errors.New("internal error: the declaration did not decode into one service")
	}
	return cfg.Services[0], nil
}

// setPath stores v at the nested key path in m, making maps on the way.
func setPath(m map[string]any, path []string, v string) error {
	for _, k := range path[:len(path)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			if _, taken := m[k]; taken {
				return fmt.Errorf("%s is both a value and a section", k)
			}
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[path[len(path)-1]] = v
	return nil
}

// labelErrors renames config paths to the labels they came from.
func labelErrors(err error, prefix string) error {
	var out []error
	for _, e := range flatten(err) {
		var ce *ConfigError
		if !errors.As(e, &ce) {
			out = append(out, e)
			continue
		}
		key := strings.TrimPrefix(strings.TrimPrefix(ce.Path, "services[0]"), ".")
		switch {
		case key == "name":
			key = "service"
		case key == "" || strings.HasPrefix(key, "backends"):
			key = "port" // the only backend setting a label gives
		}
		out = append(out, fmt.Errorf("label %s.%s: %s", prefix, key, ce.Msg))
	}
	return errors.Join(out...)
}

// DeclareServices takes the services declared by container labels (the
// Docker provider's Sink). Each becomes a running service unless the config
// has one of that name; one that is no longer declared stops listening and
// drains. A declaration that does not make a valid service is logged with
// the container and label at fault and not started.
func (s *supervisor) DeclareServices(decls []docker.LabelService) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prefix := "tierlb"
	if s.cfg != nil {
		prefix = s.cfg.Docker.LabelPrefix
	}
	var list []ServiceConfig
	seen := map[string]docker.LabelService{}
	for _, d := range decls {
		seen[d.Name] = d
		prev, known := s.decls[d.Name]
		changed := !known || !sameDecl(prev, d)
		if changed && len(d.Conflicts) > 0 {
			s.log.Warn("replicas disagree on a label-declared service: the oldest container's labels are used",
				"service", d.Name, "container", d.Container, "conflicts", strings.Join(d.Conflicts, "; "))
		}
		sc, err := labelServiceConfig(d, prefix)
		if err != nil {
			if changed {
				s.log.Error("label-declared service not started", "service", d.Name, "container", d.Container, "err", err)
			}
			continue
		}
		list = append(list, sc)
	}
	for name := range s.decls {
		if _, ok := seen[name]; !ok && !s.configured(name) {
			// Its replicas are gone; a later declaration starts afresh
			// instead of from their addresses.
			delete(s.discovered, name)
		}
	}
	s.decls, s.labelSvcs = seen, list
	if s.cfg == nil || s.draining {
		return // Start or Run has the last word
	}
	if err := s.applyLocked(s.cfg); err != nil {
		s.log.Error("label-declared services", "err", err)
	}
}

func sameDecl(a, b docker.LabelService) bool {
	return a.Listen == b.Listen && a.Container == b.Container &&
		maps.Equal(a.Settings, b.Settings) && slices.Equal(a.Conflicts, b.Conflicts)
}

// configured reports whether the config in force has a service of this name.
func (s *supervisor) configured(name string) bool {
	if s.cfg == nil {
		return false
	}
	return slices.ContainsFunc(s.cfg.Services, func(sc ServiceConfig) bool { return sc.Name == name })
}

// wantedLocked is the services that should run under cfg: the file's, then
// the label-declared ones the file leaves room for. fromLabels marks the
// latter, whose failures are logged rather than failing a reload.
func (s *supervisor) wantedLocked(cfg *Config) (list []ServiceConfig, fromLabels map[string]bool) {
	list = slices.Clone(cfg.Services)
	fromLabels = map[string]bool{}
	if !cfg.Docker.LabelServices {
		return list, fromLabels
	}
	for _, sc := range s.labelSvcs {
		if slices.ContainsFunc(cfg.Services, func(f ServiceConfig) bool { return f.Name == sc.Name }) {
			continue // the config wins
		}
		if other, ok := listenTaken(sc.Listen, list); ok {
			s.log.Error("label-declared service not started: its listen address is taken",
				"service", sc.Name, "container", s.decls[sc.Name].Container, "listen", sc.Listen, "taken_by", other)
			continue
		}
		list = append(list, sc)
		fromLabels[sc.Name] = true
	}
	return list, fromLabels
}

// listenTaken reports which service of list already uses (or overlaps)
// listen.
func listenTaken(listen string, list []ServiceConfig) (string, bool) {
	la, err := parseListenAddr(listen)
	if err != nil {
		return "", false
	}
	for _, sc := range list {
		if oa, err := parseListenAddr(sc.Listen); err == nil && oa.conflicts(la) {
			return sc.Name, true
		}
	}
	return "", false
}
