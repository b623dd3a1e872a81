package main

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/tierlb/tierlb/admin"
	"github.com/tierlb/tierlb/backends"
)

// statusFilter is what `tierlb status --service --state --backend` asks
// for: the admin API's filters of GET /api/v1/services.
type statusFilter struct {
	service string
	states  []string
	backend string
}

// statusFlags adds the filter flags to fs; the function it returns checks
// them once parsed.
func statusFlags(fs *pflag.FlagSet) func() (url.Values, func([]admin.ServiceStatus) []admin.ServiceStatus, error) {
	var f statusFilter
	fs.StringVar(&f.service, "service", "", "only this service")
	state := fs.String("state", "", `only backends in these states: up, down, draining, maint, comma-separated ("down,draining,maint": those not up)`)
	fs.StringVar(&f.backend, "backend", "", "only backends whose name or address contains this (ASCII case ignored)")
	return func() (url.Values, func([]admin.ServiceStatus) []admin.ServiceStatus, error) {
		for _, name := range strings.Split(*state, ",") {
			if name == "" {
				continue
			}
			if _, err := backends.ParseState(name); err != nil {
				return nil, nil, fmt.Errorf("--state: unknown state %q (want up, down, draining or maint, or several separated by commas)", name)
			}
			f.states = append(f.states, name)
		}
		return f.query(), f.apply, nil
	}
}

// query is the filter as the admin API's query parameters.
func (f statusFilter) query() url.Values {
	q := url.Values{}
	if f.service != "" {
		q.Set("service", f.service)
	}
	if len(f.states) > 0 {
		q.Set("state", strings.Join(f.states, ","))
	}
	if f.backend != "" {
		q.Set("backend", f.backend)
	}
	return q
}

// apply filters a services list as the API does, for a tierlb that
// predates the filters and sends everything; on a filtered answer it
// changes nothing.
func (f statusFilter) apply(list []admin.ServiceStatus) []admin.ServiceStatus {
	out := list[:0:0]
	for _, s := range list {
		if f.service != "" && s.Name != f.service {
			continue
		}
		if s.States == nil {
			// An older tierlb: count the states and connections before
			// filtering, as the API does.
			s.States = map[string]int{}
			for _, b := range s.Backends {
				s.States[b.State]++
				s.ActiveConnections += b.ActiveConnections
			}
		}
		bs := s.Backends[:0:0]
		for _, b := range s.Backends {
			if len(f.states) > 0 && !slices.Contains(f.states, b.State) {
				continue
			}
			if f.backend != "" && !containsFold(b.ID, f.backend) && !containsFold(b.Address, f.backend) {
				continue
			}
			bs = append(bs, b)
		}
		s.Backends = bs
		out = append(out, s)
	}
	return out
}

// containsFold reports whether s contains sub, ASCII case ignored, as the
// admin API matches --backend.
func containsFold(s, sub string) bool {
	return strings.Contains(asciiLower(s), asciiLower(sub))
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
