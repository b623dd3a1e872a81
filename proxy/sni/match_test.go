package sni

import (
	"strings"
	"testing"
)

func TestMatcher(t *testing.T) {
	m, err := NewMatcher([][]string{
		{"app.example.com", "App2.Example.com."}, // 0
		{"*.example.com"},                        // 1
		{"*.eu.example.com"},                     // 2
		{"*"},                                    // 3
		{"eu.example.com"},                       // 4
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		want int
	}{
		{"app.example.com", 0},
		{"APP.example.COM", 0},
		{"app.example.com.", 0},
		{"app2.example.com", 0},
		{"other.example.com", 1},
		{"a.b.example.com", 1},
		{"x.eu.example.com", 2},
		{"a.b.eu.example.com", 2},
		{"eu.example.com", 4},
		{"example.com", 3}, // the suffix alone is not matched by *.example.com
		{"elsewhere.org", 3},
		{"", 3},
		{".", 3},
		{strings.Repeat("a.", 200) + "example.com", 3}, // too long for a name
	}
	for _, tt := range tests {
		if got, ok := m.Match([]byte(tt.name)); !ok || got != tt.want {
			t.Errorf("Match(%q) = %d, %v; want %d", tt.name, got, ok, tt.want)
		}
	}
}

func TestMatcherWithoutDefault(t *testing.T) {
	m, err := NewMatcher([][]string{{"app.example.com"}, {"*.example.org"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", "example.org", "app.example.com.evil", "xapp.example.com"} {
		if got, ok := m.Match([]byte(name)); ok {
			t.Errorf("Match(%q) = %d; want no route", name, got)
		}
	}
}

func TestNewMatcherRefuses(t *testing.T) {
	tests := []struct {
		name   string
		routes [][]string
		want   string
	}{
		{"same exact name", [][]string{{"a.example.com"}, {"A.example.com."}}, `routes 0 and 1 both claim it`},
		{"same wildcard", [][]string{{"*.example.com"}, {"*.EXAMPLE.com"}}, `routes 0 and 1`},
		{"two defaults", [][]string{{"*"}, {"x.org"}, {"*"}}, `routes 0 and 2`},
		{"star inside", [][]string{{"a.*.example.com"}}, `character '*'`},
		{"partial star", [][]string{{"*app.example.com"}}, `character '*'`},
		{"empty", [][]string{{""}}, `empty name`},
		{"empty label", [][]string{{"a..example.com"}}, `empty label`},
		{"space", [][]string{{"a b.example.com"}}, `character ' '`},
		{"bare wildcard suffix", [][]string{{"*.."}}, `empty name`},
		{"long label", [][]string{{strings.Repeat("a", 64) + ".com"}}, `longer than 63`},
	}
	for _, tt := range tests {
		_, err := NewMatcher(tt.routes)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: NewMatcher = %v; want an error with %q", tt.name, err, tt.want)
		}
	}
	// One route may repeat its own names.
	if _, err := NewMatcher([][]string{{"a.example.com", "A.example.com"}}); err != nil {
		t.Errorf("a route repeating its own name: %v", err)
	}
}

func BenchmarkMatch(b *testing.B) {
	m, err := NewMatcher([][]string{{"app.example.com"}, {"*.example.com"}, {"*"}})
	if err != nil {
		b.Fatal(err)
	}
	name := []byte("Deep.Sub.Example.com")
	b.ReportAllocs()
	for b.Loop() {
		if i, _ := m.Match(name); i != 1 {
			b.Fatal(i)
		}
	}
}
