package config

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/tierlb/tierlb/backends/docker"
)

// LabelService turns a service declared by container labels into a
// service config through the same defaults, decoding and validation as a
// services[] entry of the file, so a label means exactly what the key of
// the same name means. Errors name the label (prefix.health.interval), not
// the config path.
func LabelService(d docker.LabelService, prefix string) (ServiceConfig, error) {
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
	entry, keyErrs := withDefaults(entry, "services[0]")
	cfg, p := decodeConfig(map[string]any{"services": []any{entry}})
	for _, e := range keyErrs {
		p.add(e.Path, "%s", e.Msg)
	}
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
	for _, e := range Problems(err) {
		var ce *Error
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
