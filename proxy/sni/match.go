package sni

import (
	"errors"
	"fmt"
	"strings"
)

// maxName is the longest DNS name, without its trailing dot.
const maxName = 253

// Matcher maps a server name to a route. It is built once per
// configuration and read by any number of goroutines.
//
// A name matches, in this order: a route's exact name; the route with the
// longest "*.suffix" the name ends with (any number of labels may stand
// for the star, and the suffix alone does not match); the route whose
// pattern is "*", the default, which takes hellos without a server name
// too. Names compare case-insensitively, with one trailing dot ignored.
type Matcher struct {
	exact    map[string]int
	suffix   map[string]int // "*.example.com" as ".example.com"
	fallback int            // -1: none
}

// NewMatcher builds the matcher for routes: routes[i] holds route i's
// patterns, each an exact name, "*.suffix" or "*". A pattern that is
// invalid or that two routes share is an error.
func NewMatcher(routes [][]string) (*Matcher, error) {
	m := &Matcher{exact: make(map[string]int), suffix: make(map[string]int), fallback: -1}
	var errs []error
	for i, names := range routes {
		for _, name := range names {
			p, err := Normalize(name)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			table, key := m.exact, p
			switch {
			case p == "*":
				if m.fallback >= 0 && m.fallback != i {
					errs = append(errs, fmt.Errorf("sni %q: routes %d and %d both claim it", name, m.fallback, i))
				}
				m.fallback = i
				continue
			case strings.HasPrefix(p, "*."):
				table, key = m.suffix, p[1:]
			}
			if j, ok := table[key]; ok && j != i {
				errs = append(errs, fmt.Errorf("sni %q: routes %d and %d both claim it", name, j, i))
			}
			table[key] = i
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return m, nil
}

// Match returns the route for a ClientHello's server name, as
// ServerName returned it; false when no route takes it.
func (m *Matcher) Match(name []byte) (int, bool) {
	if n := len(name); n > 0 && name[n-1] == '.' {
		name = name[:n-1]
	}
	if len(name) > 0 && len(name) <= maxName {
		var buf [maxName]byte
		key := buf[:len(name)]
		for i, c := range name {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			key[i] = c
		}
		if i, ok := m.exact[string(key)]; ok {
			return i, true
		}
		// Left to right, the first suffix found is the longest.
		for j := 1; j < len(key); j++ {
			if key[j] != '.' {
				continue
			}
			if i, ok := m.suffix[string(key[j:])]; ok {
				return i, true
			}
		}
	}
	if m.fallback >= 0 {
		return m.fallback, true
	}
	return -1, false
}

// Normalize checks a route pattern and returns its canonical form:
// lower case, without a trailing dot. A pattern is "*", "*." followed by
// a name, or a name: dot-separated labels of letters, digits, '-' and
// '_', 253 characters at most. Names are ASCII, as in the ClientHello:
// internationalized ones are written as their xn-- form.
func Normalize(pattern string) (string, error) {
	p := strings.ToLower(strings.TrimSuffix(pattern, "."))
	if p == "*" {
		return p, nil
	}
	name := strings.TrimPrefix(p, "*.")
	if err := checkName(name); err != nil {
		return "", fmt.Errorf("sni %q: %w", pattern, err)
	}
	return p, nil
}

func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case len(name) > maxName:
		return fmt.Errorf("%d characters: want at most %d", len(name), maxName)
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" {
			return errors.New("empty label: want a name such as app.example.com, *.example.com or *")
		}
		if len(label) > 63 {
			return fmt.Errorf("label %q longer than 63 characters", label)
		}
		for _, c := range label {
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("character %q: want letters, digits, '-', '_' and dots (a '*' only as a whole first label)", c)
			}
		}
	}
	return nil
}
