package main

import (
	"maps"
	"slices"
	"strings"

	"github.com/tierlb/tierlb/backends/docker"
	"github.com/tierlb/tierlb/config"
)

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
	var list []config.ServiceConfig
	seen := map[string]docker.LabelService{}
	for _, d := range decls {
		seen[d.Name] = d
		prev, known := s.decls[d.Name]
		changed := !known || !sameDecl(prev, d)
		if changed && len(d.Conflicts) > 0 {
			s.log.Warn("replicas disagree on a label-declared service: the oldest container's labels are used",
				"service", d.Name, "container", d.Container, "conflicts", strings.Join(d.Conflicts, "; "))
		}
		sc, err := config.LabelService(d, prefix)
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
	return slices.ContainsFunc(s.cfg.Services, func(sc config.ServiceConfig) bool { return sc.Name == name })
}

// wantedLocked is the services that should run under cfg: the file's, then
// the label-declared ones the file leaves room for. fromLabels marks the
// latter, whose failures are logged rather than failing a reload.
func (s *supervisor) wantedLocked(cfg *config.Config) (list []config.ServiceConfig, fromLabels map[string]bool) {
	list = slices.Clone(cfg.Services)
	fromLabels = map[string]bool{}
	if !cfg.Docker.LabelServices {
		return list, fromLabels
	}
	for _, sc := range s.labelSvcs {
		if slices.ContainsFunc(cfg.Services, func(f config.ServiceConfig) bool { return f.Name == sc.Name }) {
			continue // the config wins
		}
		if other, err := listenTaken(sc, list); err != nil {
			s.log.Error("label-declared service not started: its listen address is taken",
				"service", sc.Name, "container", s.decls[sc.Name].Container, "listen", sc.Listen, "taken_by", other, "err", err)
			continue
		}
		list = append(list, sc)
		fromLabels[sc.Name] = true
	}
	return list, fromLabels
}

// listenTaken names the service of list whose listen address cand cannot
// have too, and says why: sni services may share one (config.CanShare),
// and a TCP and a UDP service may share a port.
func listenTaken(cand config.ServiceConfig, list []config.ServiceConfig) (string, error) {
	la, err := config.ParseListenAddr(cand.Listen)
	if err != nil {
		return "", nil
	}
	for _, sc := range list {
		if sc.IsUDP() != cand.IsUDP() {
			continue
		}
		oa, err := config.ParseListenAddr(sc.Listen)
		if err != nil || !oa.Conflicts(la) && !(oa == la && len(sc.SNI) > 0 && len(cand.SNI) > 0) {
			continue
		}
		if err := config.CanShare(&cand, &sc); err != nil {
			return sc.Name, err
		}
	}
	return "", nil
}
