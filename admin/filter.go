package admin

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/tierlb/tierlb/backends"
)

// filter selects services and backends, in GET /api/v1/services and on the
// status page. The zero filter selects everything.
type filter struct {
	// service is the one service to list, by exact name.
	service string
	// states are the backend states to list; none lists every state.
	states []backends.State
	// backend is a substring of the backend's id or address, ASCII case
	// ignored; kept lower-cased.
	backend string
	// page is the status page's page of backends, from 1; 0 when not
	// given. The API has no pages and refuses the parameter.
	page int
}

// The query parameters: the API takes the first three, the page all four.
const (
	paramService = "service"
	paramState   = "state"
	paramBackend = "backend"
	paramPage    = "page"
)

// maxFilterLen bounds a name or substring: longer ones match nothing real
// and would only cost time on every backend.
const maxFilterLen = 256

// parseFilter reads q, accepting the parameters in allowed. Errors name the
// parameter and what was expected, so a typo is not a silent "match all".
func parseFilter(q url.Values, allowed ...string) (filter, error) {
	var f filter
	for _, k := range slices.Sorted(maps.Keys(q)) {
		if !slices.Contains(allowed, k) {
			return filter{}, fmt.Errorf("unknown query parameter %q (want %s)", k, strings.Join(allowed, ", "))
		}
		vs := q[k]
		if k != paramState && len(vs) > 1 {
			return filter{}, fmt.Errorf("query parameter %s given %d times, want once", k, len(vs))
		}
		v := vs[0]
		if k != paramPage && len(v) > maxFilterLen {
			return filter{}, fmt.Errorf("query parameter %s: %d bytes, want at most %d", k, len(v), maxFilterLen)
		}
		switch k {
		case paramService:
			f.service = v
		case paramBackend:
			f.backend = asciiLower(v)
		case paramPage:
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return filter{}, fmt.Errorf("query parameter page: %q is not a page number (1, 2, ...)", v)
			}
			f.page = n
		case paramState:
			for _, v := range vs {
				for _, name := range strings.Split(v, ",") {
					if name == "" {
						continue // "state=" and "up,,down" mean what they say
					}
					st, err := backends.ParseState(name)
					if err != nil {
						return filter{}, fmt.Errorf("query parameter state: unknown state %q (want up, down, draining or maint, or several separated by commas)", name)
					}
					if !slices.Contains(f.states, st) {
						f.states = append(f.states, st)
					}
				}
			}
			slices.Sort(f.states)
		}
	}
	return f, nil
}

// query encodes f back into parameters, for the page's links; parseFilter
// reads it back to the same filter.
func (f filter) query() url.Values {
	q := url.Values{}
	if f.service != "" {
		q.Set(paramService, f.service)
	}
	if len(f.states) > 0 {
		names := make([]string, len(f.states))
		for i, st := range f.states {
			names[i] = st.String()
		}
		q.Set(paramState, strings.Join(names, ","))
	}
	if f.backend != "" {
		q.Set(paramBackend, f.backend)
	}
	if f.page > 0 {
		q.Set(paramPage, strconv.Itoa(f.page))
	}
	return q
}

// selectsService reports whether f lists the named service.
func (f filter) selectsService(name string) bool { return f.service == "" || f.service == name }

// selectsBackend reports whether f lists a backend of this id, address and
// state.
func (f filter) selectsBackend(id, address string, st backends.State) bool {
	if len(f.states) > 0 && !slices.Contains(f.states, st) {
		return false
	}
	if f.backend == "" {
		return true
	}
	return containsFold(id, f.backend) || containsFold(address, f.backend)
}

// containsFold reports whether s contains the lower-case sub, ignoring
// ASCII case; container names and addresses are ASCII, and this allocates
// nothing per backend.
func containsFold(s, sub string) bool {
	n := len(sub)
	for i := 0; i+n <= len(s); i++ {
		if asciiEqualFold(s[i:i+n], sub) {
			return true
		}
	}
	return false
}

func asciiEqualFold(s, lower string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// asciiLower lower-cases the ASCII letters of s, as containsFold compares.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
