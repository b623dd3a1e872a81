package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/pelletier/go-toml/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// envPrefix and the key replacer make TIERLB_ADMIN_LISTEN set admin.listen.
const envPrefix = "TIERLB"

// source is everything a config is loaded from besides the environment,
// which viper reads itself.
type source struct {
	// File is the config file; "" means none. Its extension picks the format.
	File string
	// Flags maps config keys to the command-line flags bound to them. Only
	// flags the user set override the other sources.
	Flags map[string]*pflag.Flag
	// Quick is the quick-mode service built from --listen/--backend; nil
	// when not in quick mode. It goes through the same defaults and checks
	// as a service from a file.
	Quick map[string]any
}

// loadConfig merges defaults < file < TIERLB_* environment < flags into a
// Config and validates it. The error joins one *ConfigError per problem, in
// key order, decoding and validation problems together, so a user fixes the
// file in one pass.
func loadConfig(src source) (*Config, error) {
	var doc map[string]any
	if src.File != "" {
		var err error
		if doc, err = readConfigFile(src.File); err != nil {
			return nil, err
		}
	}
	return loadDoc(src, doc)
}

// loadDoc is loadConfig with the file already parsed (nil: no file).
func loadDoc(src source, doc map[string]any) (*Config, error) {
	v := viper.New()
	for k, d := range topDefaults() {
		v.SetDefault(k, d)
	}
	v.SetEnvPrefix(envPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	// admin.listen: "" disables the admin API, so an empty variable must
	// count as set.
	v.AllowEmptyEnv(true)
	v.AutomaticEnv()

	var services any
	if doc != nil {
		// services is kept out of viper: viper lowercases every map key
		// inside lists too, which would corrupt Docker label selectors
		// (labels are case-sensitive), and env or flags cannot address list
		// elements anyway.
		services = doc["services"]
		delete(doc, "services")
		for k := range doc {
			if strings.EqualFold(k, "services") {
				return nil, &ConfigError{Path: k, Msg: "write the key in lower case: services"}
			}
		}
		if err := v.MergeConfigMap(doc); err != nil {
			return nil, fmt.Errorf("config file %s: %w", src.File, err)
		}
	}
	for key, f := range src.Flags {
		if err := v.BindPFlag(key, f); err != nil {
			return nil, fmt.Errorf("bind flag --%s to %s: %w", f.Name, key, err)
		}
	}
	if src.Quick != nil {
		if services != nil {
			return nil, &ConfigError{Msg: "quick mode (--listen/--backend) cannot be combined with services from a config file"}
		}
		services = []any{src.Quick}
	}

	settings := v.AllSettings()
	settings["services"] = withServiceDefaults(services)
	cfg, p := decodeConfig(settings)
	validate(cfg, p)
	if err := p.err(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// withServiceDefaults lays every service entry over the service defaults.
// Entries that are not maps are left for the decoder to report.
func withServiceDefaults(services any) any {
	list, ok := services.([]any)
	if !ok {
		if services == nil {
			return []any{}
		}
		return services
	}
	out := make([]any, len(list))
	for i, e := range list {
		if m, ok := e.(map[string]any); ok {
			out[i] = mergeOver(serviceDefaults(), m)
		} else {
			out[i] = e
		}
	}
	return out
}

// decodeConfig decodes the merged settings strictly: unknown keys are errors,
// and every field that fails is recorded, not just the first.
func decodeConfig(settings map[string]any) (*Config, *problems) {
	cfg := &Config{}
	p := &problems{}
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook:  decodeHook,
		ErrorUnused: true,
		Result:      cfg,
		TagName:     "mapstructure",
	})
	if err != nil {
		// Only a bad DecoderConfig gets here, which is a bug in this file.
		p.addDecode(&ConfigError{Msg: fmt.Sprintf("internal error: %v", err)})
		return cfg, p
	}
	if err := dec.Decode(settings); err != nil {
		for _, e := range decodeErrors(err) {
			p.addDecode(e)
		}
	}
	return cfg, p
}

// readConfigFile parses a YAML, TOML or JSON file into a map with string keys
// all the way down.
func readConfigFile(path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	doc, err := parseConfig(filepath.Ext(path), data)
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return doc, nil
}

// errNotAMap is returned for a document whose top level is not a mapping.
var errNotAMap = errors.New("the top level must be a map of keys")

// parseConfig parses data in the format named by ext (".yaml", ".yml",
// ".toml" or ".json").
func parseConfig(ext string, data []byte) (map[string]any, error) {
	var raw any
	var err error
	switch strings.ToLower(ext) {
	case ".yaml", ".yml":
		err = yaml.Unmarshal(data, &raw)
	case ".toml":
		var m map[string]any
		err = toml.Unmarshal(data, &m)
		raw = m
	case ".json":
		err = json.Unmarshal(data, &raw)
	default:
		return nil, fmt.Errorf("unsupported extension %q (want .yaml, .yml, .toml or .json)", ext)
	}
	if err != nil {
		return nil, err
	}
	switch m := normalizeMaps(raw).(type) {
	case map[string]any:
		return m, nil
	case nil:
		return map[string]any{}, nil // an empty file: all defaults
	}
	return nil, errNotAMap
}

func stringKey(k any) string {
	if s, ok := k.(string); ok {
		return s
	}
	return fmt.Sprint(k)
}
