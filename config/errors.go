package config

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/go-viper/mapstructure/v2"
)

// Error is one problem with the configuration, tied to the key it is
// about, e.g. `services[1].timeouts.connect: "2x" is not a duration`.
type Error struct {
	Path string // key path; "" for problems with the file as a whole
	Msg  string
}

func (e *Error) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// Problems splits an error of Load into its problems, in the order they are
// reported; nil for nil.
func Problems(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, Problems(e)...)
		}
		return out
	}
	return []error{err}
}

// problems collects Errors. A key that failed to decode is remembered so
// that validation does not pile a second, misleading error on the zero value
// left in its place.
type problems struct {
	errs []error
	bad  map[string]bool
}

func (p *problems) add(path, format string, args ...any) {
	for q := path; q != ""; q = parentPath(q) {
		if p.bad[q] {
			return
		}
	}
	p.errs = append(p.errs, &Error{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// addDecode records one decoding failure and marks its key as bad.
func (p *problems) addDecode(e *Error) {
	if p.bad == nil {
		p.bad = map[string]bool{}
	}
	p.bad[e.Path] = true
	p.errs = append(p.errs, e)
}

// err joins the problems grouped by section and service (admin, docker, ...,
// services[0], services[1], ...), keeping the order they were found in
// within a group, which follows the fields' order in the file.
func (p *problems) err() error {
	slices.SortStableFunc(p.errs, func(a, b error) int {
		return comparePaths(group(a), group(b))
	})
	return errors.Join(p.errs...)
}

// group is the first element of an error's path: "services[1]" for
// "services[1].timeouts.connect", "log" for "log.level".
func group(err error) string {
	var ce *Error
	if !errors.As(err, &ce) {
		return ""
	}
	path := ce.Path
	if i := strings.IndexByte(path, ']'); i >= 0 {
		return path[:i+1]
	}
	if i := strings.IndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return path
}

// parentPath strips the last element: a.b[2].c → a.b[2] → a.b → a → "".
func parentPath(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// decodeErrors flattens the decoder's joined error tree into one Error
// per key, sorted by path, with messages written for people rather than in
// terms of Go types.
func decodeErrors(err error) []*Error {
	var out []*Error
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		de, ok := err.(*mapstructure.DecodeError)
		if !ok {
			// Decode wraps the joined errors in a summary line; look inside.
			if inner := errors.Unwrap(err); inner != nil {
				walk(inner)
				return
			}
			out = append(out, &Error{Msg: err.Error()})
			return
		}
		path, inner := de.Name(), de.Unwrap()
		if msg, ok := strings.CutPrefix(inner.Error(), "has invalid keys: "); ok {
			for key := range strings.SplitSeq(msg, ", ") {
				out = append(out, &Error{Path: joinPath(path, key), Msg: "unknown key"})
			}
			return
		}
		out = append(out, &Error{Path: path, Msg: describeDecodeError(inner)})
	}
	walk(err)
	slices.SortStableFunc(out, func(a, b *Error) int { return comparePaths(a.Path, b.Path) })
	return out
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func describeDecodeError(err error) string {
	var ut *mapstructure.UnconvertibleTypeError
	if errors.As(err, &ut) {
		return fmt.Sprintf("expected %s, got %s", kindName(ut.Expected.Type()), valueName(ut.Value))
	}
	var pe *mapstructure.ParseError
	if errors.As(err, &pe) {
		return fmt.Sprintf("expected %s, got %s", kindName(pe.Expected.Type()), valueName(pe.Value))
	}
	return err.Error()
}

// kindName names a field type the way the config file spells it.
func kindName(t reflect.Type) string {
	switch t {
	case durationType:
		return "a duration"
	case staticBackendType:
		return `"host:port" or {address, weight, priority}`
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean (true or false)"
	case reflect.Int, reflect.Int64:
		return "an integer"
	case reflect.Slice:
		return "a list"
	case reflect.Map, reflect.Struct, reflect.Pointer:
		return "a map"
	}
	return t.String()
}

func valueName(v any) string {
	switch t := v.(type) {
	case nil:
		return "nothing"
	case string:
		return fmt.Sprintf("%q", t)
	case map[string]any, map[any]any:
		return "a map"
	case []any:
		return "a list"
	}
	return fmt.Sprintf("%v", v)
}

// comparePaths orders key paths with list indexes compared as numbers, so
// services[2] comes before services[10].
func comparePaths(a, b string) int {
	for a != "" && b != "" {
		ai, an := leadingNumber(a)
		bi, bn := leadingNumber(b)
		if an > 0 && bn > 0 {
			if ai != bi {
				return ai - bi
			}
			a, b = a[an:], b[bn:]
			continue
		}
		if a[0] != b[0] {
			return int(a[0]) - int(b[0])
		}
		a, b = a[1:], b[1:]
	}
	return len(a) - len(b)
}

func leadingNumber(s string) (n, width int) {
	for width < len(s) && width < 9 && s[width] >= '0' && s[width] <= '9' {
		n = n*10 + int(s[width]-'0')
		width++
	}
	return n, width
}
