package sni

import (
	"bytes"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
)

// FuzzReader: whatever the input and however it is split into reads, the
// Reader gives one verdict; a hello it frames lies within the input and
// within MaxSize, and where crypto/tls accepts that hello, ServerName
// returns the name crypto/tls sees.
func FuzzReader(f *testing.F) {
	pq := clientHello(f, &tls.Config{ServerName: "app.example.com"})
	f.Add(pq, uint16(1))
	f.Add(twoRecords(pq, 700), uint16(300))
	f.Add(twoRecords(pq, 1), uint16(0))
	f.Add(clientHello(f, &tls.Config{}), uint16(5))
	f.Add(clientHello(f, &tls.Config{MaxVersion: tls.VersionTLS12, ServerName: "x.org"}), uint16(9))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"), uint16(3))
	f.Add([]byte{0x16, 3, 1, 0, 4, 1, 0, 0, 0}, uint16(2))
	f.Fuzz(func(t *testing.T, in []byte, split uint16) {
		var whole Reader
		n, err := whole.Next(in)
		var parts Reader
		at := int(split) % (len(in) + 1)
		pn, perr := parts.Next(in[:at])
		if pn == 0 && perr == nil {
			pn, perr = parts.Next(in)
		}
		if pn != n || (perr == nil) != (err == nil) {
			t.Fatalf("split at %d: Next = %d, %v; whole: %d, %v", at, pn, perr, n, err)
		}
		if err != nil {
			if !errors.Is(err, ErrNotTLS) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("Next error %v is none of the three kinds", err)
			}
			return
		}
		if n == 0 {
			return
		}
		if n > len(in) || n > MaxSize {
			t.Fatalf("Next = %d for %d bytes (MaxSize %d)", n, len(in), MaxSize)
		}
		name, perr := ServerName(in[:n])
		if perr != nil && !errors.Is(perr, ErrMalformed) {
			t.Fatalf("ServerName error %v does not wrap ErrMalformed", perr)
		}
		if std, ok := stdlibServerName(in[:n]); ok && (perr != nil || string(name) != std) {
			t.Fatalf("ServerName = %q, %v; crypto/tls reads %q", name, perr, std)
		}
	})
}

// FuzzMatcher: Match agrees with a plain reading of the rules over a
// small fixed table: exact, then the longest suffix, then the default.
func FuzzMatcher(f *testing.F) {
	routes := [][]string{{"app.example.com"}, {"*.example.com"}, {"*.eu.example.com"}, {"*"}}
	m, err := NewMatcher(routes)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"app.example.com", "X.EU.example.com.", "", "example.com", "a..example.com", ".example.com"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, name []byte) {
		got, ok := m.Match(name)
		if want := matchByRules(name); !ok || got != want {
			t.Fatalf("Match(%q) = %d, %v; want %d", name, got, ok, want)
		}
	})
}

func matchByRules(raw []byte) int {
	// The matcher folds ASCII letters only (strings.ToLower would fold
	// more), as names in a ClientHello are ASCII.
	b := bytes.TrimSuffix(bytes.Clone(raw), []byte("."))
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	name := string(b)
	switch {
	case name == "" || len(name) > maxName:
		return 3
	case name == "app.example.com":
		return 0
	case strings.HasSuffix(name, ".eu.example.com") && len(name) > len(".eu.example.com"):
		return 2
	case strings.HasSuffix(name, ".example.com") && len(name) > len(".example.com"):
		return 1
	}
	return 3
}
