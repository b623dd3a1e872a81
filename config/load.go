package config

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// envPrefix and the key replacer make TIERLB_ADMIN_LISTEN set admin.listen.
const envPrefix = "TIERLB"

// Source is everything a config is loaded from besides the environment,
// which viper reads itself.
type Source struct {
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

// Load merges defaults < file < TIERLB_* environment < flags into a Config
// and validates it. The error joins one *Error per problem (see Problems),
// in key order, decoding and validation problems together, so a user fixes
// the file in one pass. A file that cannot be read or parsed is one error
// that is not an *Error.
func Load(src Source) (*Config, error) {
	var data []byte
	if src.File != "" {
		var err error
		if data, err = ReadFile(src.File); err != nil {
			return nil, err
		}
	}
	return LoadData(src, data)
}

// LoadData is Load with the file's content already read by ReadFile, so
// that a caller that hashes the content (to notice changes) parses the
// very bytes it hashed. data is ignored when src.File is "".
func LoadData(src Source, data []byte) (*Config, error) {
	var doc map[string]any
	if src.File != "" {
		var err error
		if doc, err = Parse(filepath.Ext(src.File), data); err != nil {
			return nil, fmt.Errorf("config file %s: %w", src.File, err)
		}
	}
	return loadDoc(src, doc)
}

// loadDoc is Load with the file already parsed (nil: no file).
func loadDoc(src Source, doc map[string]any) (*Config, error) {
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
				return nil, &Error{Path: k, Msg: "write the key in lower case: services"}
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
			return nil, &Error{Msg: "quick mode (--listen/--backend) cannot be combined with services from a config file"}
		}
		services = []any{src.Quick}
	}

	settings := v.AllSettings()
	var keyErrs []*Error
	settings["services"], keyErrs = withServiceDefaults(services)
	cfg, p := decodeConfig(settings)
	for _, e := range keyErrs {
		p.add(e.Path, "%s", e.Msg)
	}
	validate(cfg, p)
	if err := p.err(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// withServiceDefaults lays every service entry over the service defaults
// of its protocol, and returns the keys of the other protocol it found.
// Entries that are not maps are left for the decoder to report.
func withServiceDefaults(services any) (any, []*Error) {
	list, ok := services.([]any)
	if !ok {
		if services == nil {
			return []any{}, nil
		}
		return services, nil
	}
	out := make([]any, len(list))
	var errs []*Error
	for i, e := range list {
		if m, ok := e.(map[string]any); ok {
			var keyErrs []*Error
			out[i], keyErrs = withDefaults(m, fmt.Sprintf("services[%d]", i))
			errs = append(errs, keyErrs...)
		} else {
			out[i] = e
		}
	}
	return out, errs
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
		p.addDecode(&Error{Msg: fmt.Sprintf("internal error: %v", err)})
		return cfg, p
	}
	if err := dec.Decode(settings); err != nil {
		for _, e := range decodeErrors(err) {
			p.addDecode(e)
		}
	}
	return cfg, p
}
