package docker

import (
	"slices"
	"strings"
	"unique"
)

// labelSet is a record's labels: key/value pairs sorted by key, each
// string a unique.Handle. Thousands of replicas carry the same few keys and
// mostly the same values (service, project, image), so a record holds 16 B
// per label instead of a map of its own copies (about 300 B for three
// labels), and a value no record uses any more is freed with its last one.
type labelSet []labelPair

type labelPair struct{ key, value unique.Handle[string] }

func newLabelSet(m map[string]string) labelSet {
	if len(m) == 0 {
		return nil
	}
	l := make(labelSet, 0, len(m))
	for k, v := range m {
		l = append(l, labelPair{unique.Make(k), unique.Make(v)})
	}
	slices.SortFunc(l, func(a, b labelPair) int { return strings.Compare(a.key.Value(), b.key.Value()) })
	return l
}

// get returns the value of label k, and whether the record has it.
func (l labelSet) get(k string) (string, bool) {
	i, ok := slices.BinarySearchFunc(l, k, func(p labelPair, k string) int { return strings.Compare(p.key.Value(), k) })
	if !ok {
		return "", false
	}
	return l[i].value.Value(), true
}

// mapLabels looks labels up in a map, for selectors matched against the
// container list before a record exists.
func mapLabels(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}
