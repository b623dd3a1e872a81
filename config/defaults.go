package config

import (
	"maps"
	"strings"
)

// topDefaults holds every scalar key outside services with SPEC.md's default.
// Each one is given to viper.SetDefault: besides filling the config, that is
// what lets viper map TIERLB_ADMIN_LISTEN and friends onto the key, since
// AutomaticEnv only consults variables for keys it already knows.
func topDefaults() map[string]any {
	return map[string]any{
		"admin.listen":              "127.0.0.1:9090",
		"admin.token":               "",
		"admin.pprof":               false,
		"log.level":                 "info",
		"log.format":                "text",
		"log.access":                true,
		"shutdown.drain_timeout":    "30s",
		"engine.loops":              0,
		"docker.enabled":            "auto",
		"docker.host":               "",
		"docker.label_prefix":       "tierlb",
		"docker.exposed_by_default": false,
		"docker.networks":           []string{},
		"docker.resync_interval":    "30s",
		"docker.label_services":     true,
		"config_watch":              "0s",
	}
}

// serviceDefaults is the default of every key of one services[] entry.
// viper cannot default list elements, so load.go merges each entry over a
// fresh copy of this map before decoding. Merging maps (rather than filling
// zero fields after decoding) keeps "unset" apart from an explicit zero such
// as retries: 0. backends.docker has no entry on purpose: its presence is
// what turns Docker selection on for the service.
func serviceDefaults() map[string]any {
	return map[string]any{
		"name":    "",
		"listen":  "",
		"balance": "roundrobin",
		"backends": map[string]any{
			"static": []any{},
		},
		"health": map[string]any{
			"type":     "tcp",
			"interval": "2s",
			"timeout":  "1s",
			"rise":     2,
			"fall":     3,
			"http": map[string]any{
				"path":          "/healthz",
				"expect_status": "200-399",
				"host":          "",
			},
			"send":   "",
			"expect": "",
			"passive": map[string]any{
				"max_fails":    3,
				"fail_timeout": "10s",
			},
		},
		"slow_start": "0s",
		"timeouts": map[string]any{
			"connect":    "2s",
			"idle":       "1h",
			"half_close": "30s",
		},
		"retries":               2,
		"max_conns":             0,
		"max_conns_per_backend": 0,
		"on_backend_down":       "keep",
		"proxy_protocol":        "",
		"accept_proxy_protocol": []any{},
		"allow":                 []any{},
		"reuse_port":            false,
		"zero_copy":             "auto",
	}
}

// staticDefaults completes a static backend written as a map.
func staticDefaults() map[string]any {
	return map[string]any{"weight": 1, "priority": 0}
}

// mergeOver returns user laid over defaults. At levels the defaults describe,
// user keys are matched case-insensitively (as viper does for top-level keys)
// and stored lowercased; anything below a key the defaults do not know, such
// as a Docker label selector, is copied untouched so label names keep their
// case. A user value of another shape than the default (a string where a map
// is expected) wins as is, so the decoder reports it at the right path.
func mergeOver(defaults, user map[string]any) map[string]any {
	out := maps.Clone(defaults)
	for k, v := range user {
		lk := strings.ToLower(k)
		d, known := defaults[lk]
		if !known {
			out[k] = v
			continue
		}
		dm, dIsMap := d.(map[string]any)
		um, uIsMap := v.(map[string]any)
		if dIsMap && uIsMap {
			out[lk] = mergeOver(dm, um)
			continue
		}
		if v == nil && dIsMap {
			// "health:" with nothing under it means "all defaults".
			continue
		}
		out[lk] = v
	}
	return out
}
