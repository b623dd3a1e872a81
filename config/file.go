package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"go.yaml.in/yaml/v3"
)

// MaxFileSize bounds a config file. A real one is a few kilobytes; the
// limit keeps a mistaken path (a log, a disk image) or a runaway generator
// from costing a reload hundreds of megabytes and seconds of CPU.
const MaxFileSize = 4 << 20

// ErrTooLarge is returned by ReadFile for a file over MaxFileSize.
var ErrTooLarge = errors.New("larger than the 4 MiB limit for a config file")

// ReadFile reads a config file of at most MaxFileSize bytes. A caller that
// hashes the content (to notice changes) hands the same bytes to LoadData,
// so that what it hashed is what it parsed even while the file is being
// rewritten.
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("read config file %s: %w", path, ErrTooLarge)
	}
	return data, nil
}

// errNotAMap is returned for a document whose top level is not a mapping.
var errNotAMap = errors.New("the top level must be a map of keys")

// Parse parses a config document in the format named by ext (".yaml",
// ".yml", ".toml" or ".json") into a map with string keys all the way down.
func Parse(ext string, data []byte) (map[string]any, error) {
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

// normalizeMaps turns map[any]any (YAML mappings with non-string keys) into
// map[string]any all the way down, so that everything after parsing only
// ever sees one map type.
func normalizeMaps(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = normalizeMaps(e)
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[stringKey(k)] = normalizeMaps(e)
		}
		return m
	case []any:
		for i, e := range t {
			t[i] = normalizeMaps(e)
		}
		return t
	}
	return v
}
