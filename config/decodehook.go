package config

import (
	"fmt"
	"maps"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
)

var (
	durationType      = reflect.TypeFor[time.Duration]()
	staticBackendType = reflect.TypeFor[StaticBackend]()
)

// decodeHook converts what the file formats, environment variables and flags
// produce into the config's field types, strictly: values arrive as YAML/TOML
// scalars (int, int64, float64 from JSON, bool), as strings from the
// environment, and as typed values from flags. Loose conversions the decoder
// would make in weak mode (1 → true, a list → its first element) are refused;
// these are the deliberate ones. Errors say what the value is not; the decoder
// prefixes them with the key path.
func decodeHook(from, to reflect.Type, data any) (any, error) {
	switch {
	case to == durationType:
		return toDuration(data)
	case to == staticBackendType:
		return toStaticBackend(data)
	}
	switch to.Kind() {
	case reflect.Int, reflect.Int64:
		return toInt(data)
	case reflect.Bool:
		if s, ok := data.(string); ok {
			b, err := strconv.ParseBool(strings.TrimSpace(s))
			if err != nil {
				return nil, fmt.Errorf("%q is not a boolean (true or false)", s)
			}
			return b, nil
		}
	case reflect.String:
		// Numbers and booleans where text is expected: a label value of 1,
		// expect_status: 200, docker.enabled: true.
		switch v := data.(type) {
		case bool:
			return strconv.FormatBool(v), nil
		case int, int64, uint64:
			return fmt.Sprint(v), nil
		case float64:
			return strconv.FormatFloat(v, 'f', -1, 64), nil
		}
	case reflect.Slice:
		// Lists from TIERLB_DOCKER_NETWORKS=a,b or a --flag value.
		if s, ok := data.(string); ok && to.Elem().Kind() == reflect.String {
			return splitList(s), nil
		}
		if data != nil && from.Kind() != reflect.Slice {
			return nil, fmt.Errorf("expected a list, got %s", valueName(data))
		}
	case reflect.Struct, reflect.Map:
		// The decoder's own messages here speak of Go kinds.
		if data != nil && from.Kind() != reflect.Map && from != to {
			return nil, fmt.Errorf("expected %s, got %s", kindName(to), valueName(data))
		}
	}
	return data, nil
}

func toDuration(data any) (any, error) {
	switch v := data.(type) {
	case time.Duration:
		return v, nil
	case string:
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("%q is not a duration (write it like 1500ms, 2s, 1h30m)", v)
		}
		return d, nil
	case int, int64, float64:
		// A bare number has no unit; only zero is unambiguous.
		if n, err := toInt(v); err == nil && n == 0 {
			return time.Duration(0), nil
		}
		return nil, fmt.Errorf("%v is not a duration (add a unit, e.g. \"%vs\")", v, v)
	}
	return data, nil
}

// toInt accepts integers, integral floats (JSON numbers) and decimal strings.
func toInt(data any) (any, error) {
	switch v := data.(type) {
	case int:
		return v, nil
	case int64:
		return int(v), nil
	case uint64:
		if v > math.MaxInt {
			return nil, fmt.Errorf("%d is too large", v)
		}
		return int(v), nil
	case float64:
		if v != math.Trunc(v) || math.IsInf(v, 0) || math.IsNaN(v) || math.Abs(v) > 1<<53 {
			return nil, fmt.Errorf("%v is not an integer", v)
		}
		return int(v), nil
	case string:
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("%q is not an integer", v)
		}
		return n, nil
	}
	return data, nil
}

// toStaticBackend accepts "host:port" or {address, weight, priority} and
// fills the defaults of the map form.
func toStaticBackend(data any) (any, error) {
	switch v := data.(type) {
	case StaticBackend:
		return v, nil
	case string:
		return map[string]any{"address": v, "weight": 1, "priority": 0}, nil
	case map[string]any:
		m := maps.Clone(staticDefaults())
		for k, e := range v {
			lk := strings.ToLower(k)
			if _, known := m[lk]; known || lk == "address" {
				k = lk
			}
			m[k] = e
		}
		return m, nil
	case nil:
		return data, nil
	}
	return nil, fmt.Errorf("expected %s, got %s", kindName(staticBackendType), valueName(data))
}

// splitList splits a comma-separated list, dropping empty items, so that an
// empty variable means an empty list.
func splitList(s string) []string {
	out := []string{}
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
