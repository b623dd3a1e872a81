package fakeengine

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/moby/moby/api/types/events"
)

// filterArgs is the filters query parameter: each key's accepted values.
type filterArgs map[string][]string

// parseFilters reads the filters parameter in both of the daemon's forms:
// {"label":{"a=b":true}} (every client since API 1.22) and the older
// {"label":["a=b"]}.
func parseFilters(s string) (filterArgs, error) {
	out := filterArgs{}
	if s == "" {
		return out, nil
	}
	var modern map[string]map[string]bool
	if err := json.Unmarshal([]byte(s), &modern); err == nil {
		for k, vals := range modern {
			for v, on := range vals {
				if on {
					out[k] = append(out[k], v)
				}
			}
			slices.Sort(out[k])
		}
		return out, nil
	}
	var legacy map[string][]string
	if err := json.Unmarshal([]byte(s), &legacy); err != nil {
		return nil, fmt.Errorf("invalid filter %q: want a JSON object of filter names to values", s)
	}
	for k, vals := range legacy {
		out[k] = slices.Sorted(slices.Values(vals))
	}
	return out, nil
}

// only rejects keys the endpoint does not know, with the daemon's message.
func (a filterArgs) only(keys ...string) error {
	for k := range a {
		if !slices.Contains(keys, k) {
			return fmt.Errorf("invalid filter '%s'", k)
		}
	}
	return nil
}

// matchLabels is the daemon's label filter: every value, "key" or
// "key=value", must hold.
func (a filterArgs) matchLabels(labels map[string]string) bool {
	for _, want := range a["label"] {
		k, v, withValue := strings.Cut(want, "=")
		got, ok := labels[k]
		if !ok || (withValue && got != v) {
			return false
		}
	}
	return true
}

// anyOf says whether the key is absent or one of its values is among got.
func (a filterArgs) anyOf(key string, got ...string) bool {
	vals, ok := a[key]
	if !ok {
		return true
	}
	for _, v := range vals {
		if slices.Contains(got, v) {
			return true
		}
	}
	return false
}

// eventFilter is a parsed /events filter.
type eventFilter struct{ args filterArgs }

func newEventFilter(a filterArgs) (eventFilter, error) {
	if err := a.only("type", "event", "label", "container", "network", "scope", "service", "node"); err != nil {
		return eventFilter{}, err
	}
	return eventFilter{args: a}, nil
}

func (f eventFilter) match(m events.Message) bool {
	a := f.args
	if !a.anyOf("type", string(m.Type)) || !a.anyOf("scope", m.Scope) {
		return false
	}
	if vals, ok := a["event"]; ok && !slices.ContainsFunc(vals, func(v string) bool { return actionMatches(v, string(m.Action)) }) {
		return false
	}
	if _, ok := a["label"]; ok && !a.matchLabels(m.Actor.Attributes) {
		return false
	}
	if _, ok := a["container"]; ok {
		id, name := m.Actor.ID, m.Actor.Attributes["name"]
		if m.Type == events.NetworkEventType {
			id, name = m.Actor.Attributes["container"], ""
		}
		if !slices.ContainsFunc(a["container"], func(v string) bool { return v == name || (v != "" && strings.HasPrefix(id, v)) }) {
			return false
		}
	}
	for _, k := range []string{"service", "node"} {
		if _, ok := a[k]; ok && (string(m.Type) != k || !a.anyOf(k, m.Actor.ID, m.Actor.Attributes["name"])) {
			return false
		}
	}
	if _, ok := a["network"]; ok {
		if m.Type != events.NetworkEventType || !a.anyOf("network", m.Actor.ID, m.Actor.Attributes["name"]) {
			return false
		}
	}
	return true
}

// actionMatches is the daemon's event filter: exact, except that
// "health_status", "exec_create" and "exec_start" without a colon also
// match their actions with a colon and detail ("health_status: healthy").
func actionMatches(filter, action string) bool {
	if filter == action {
		return true
	}
	switch filter {
	case "health_status", "exec_create", "exec_start":
		prefix, _, found := strings.Cut(action, ":")
		return found && prefix == filter
	}
	return false
}
