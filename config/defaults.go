package config

import (
	"maps"
	"slices"
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
		"engine.io_uring":           true,
		"docker.enabled":            "auto",
		"docker.host":               "",
		"docker.label_prefix":       "tierlb",
		"docker.exposed_by_default": false,
		"docker.networks":           []string{},
		"docker.resync_interval":    "30s",
		"docker.label_services":     true,
		"docker.swarm":              "auto",
		"docker.swarm_poll":         "1s",
		"config_watch":              "0s",
		"handover.socket":           "",
	}
}

// serviceDefaults is the default of every key of one services[] entry.
// viper cannot default list elements, so load.go merges each entry over a
// fresh copy of this map before decoding. Merging maps (rather than filling
// zero fields after decoding) keeps "unset" apart from an explicit zero such
// as retries: 0. backends.docker has no entry on purpose: its presence is
// what turns Docker selection on for the service.
//
// Some keys belong to one protocol (protocolKeys): a service gets the
// defaults of its own, so that a key of the other protocol is one the user
// wrote, which validation refuses. A UDP service's health type defaults to
// none, since tcp, the TCP default, cannot check UDP.
func serviceDefaults(protocol string) map[string]any {
	d := map[string]any{
		"name":     "",
		"listen":   "",
		"protocol": ProtocolTCP,
		"balance":  "roundrobin",
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
			"connect":      "2s",
			"idle":         "1h",
			"half_close":   "30s",
			"client_hello": "5s",
			"first_data":   "10s",
		},
		"retries":               2,
		"max_conns":             0,
		"max_conns_per_backend": 0,
		"max_conns_per_client":  0,
		"defer_dial":            false,
		"on_backend_down":       "keep",
		"proxy_protocol":        "",
		"accept_proxy_protocol": []any{},
		"sni":                   []any{},
		"allow":                 []any{},
		"reuse_port":            false,
		"zero_copy":             "auto",
		"udp": map[string]any{
			"session_timeout": "30s",
			"max_sessions":    0,
			"responses":       0,
		},
	}
	for key, p := range protocolKeys {
		if p != protocol {
			delete(d, key)
		}
	}
	if protocol == ProtocolUDP {
		d["protocol"] = ProtocolUDP
		d["health"].(map[string]any)["type"] = "none"
	}
	return d
}

// protocolKeys are the keys of a services[] entry that only one protocol
// takes. A UDP session has no connect, idle or half-close phase (it has
// udp.session_timeout), no dial to retry, no byte stream to splice or to
// prefix with a PROXY header, and it always leaves a backend that goes
// down; max_sessions is its max_conns.
var protocolKeys = map[string]string{
	"timeouts":              ProtocolTCP,
	"retries":               ProtocolTCP,
	"max_conns":             ProtocolTCP,
	"on_backend_down":       ProtocolTCP,
	"proxy_protocol":        ProtocolTCP,
	"accept_proxy_protocol": ProtocolTCP,
	"zero_copy":             ProtocolTCP,
	"sni":                   ProtocolTCP,
	"max_conns_per_client":  ProtocolTCP,
	"defer_dial":            ProtocolTCP,
	"udp":                   ProtocolUDP,
}

// entryProtocol returns the protocol an entry asks for: "tcp" when it
// sets none (an invalid value is validation's to report).
func entryProtocol(entry map[string]any) string {
	for k, v := range entry {
		if strings.EqualFold(k, "protocol") {
			if s, ok := v.(string); ok && s == ProtocolUDP {
				return ProtocolUDP
			}
		}
	}
	return ProtocolTCP
}

// withDefaults lays a services[] entry over the defaults of its protocol
// and reports, with path, the keys it sets that belong to the other one.
func withDefaults(entry map[string]any, path string) (map[string]any, []*Error) {
	protocol := entryProtocol(entry)
	var errs []*Error
	for k := range entry {
		lk := strings.ToLower(k)
		if want, ok := protocolKeys[lk]; ok && want != protocol {
			msg := "a TCP setting; a UDP service takes udp.session_timeout, udp.max_sessions and udp.responses instead"
			if want == ProtocolUDP {
				msg = "applies to UDP services only (protocol: udp)"
			}
			errs = append(errs, &Error{Path: path + "." + lk, Msg: msg})
		}
	}
	slices.SortFunc(errs, func(a, b *Error) int { return strings.Compare(a.Path, b.Path) })
	return mergeOver(serviceDefaults(protocol), entry), errs
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
