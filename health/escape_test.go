package health

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

func typeName(v any) string { return fmt.Sprintf("%T", v) }

func TestParseEscapes(t *testing.T) {
	tests := []struct {
		name, in string
		want     string
		wantErr  string
	}{
		{"plain", "PING", "PING", ""},
		{"crlf", `PING\r\n`, "PING\r\n", ""},
		{"hex and octal", `\x00\x7f\377`, "\x00\x7f\xff", ""},
		{"unicode", `caf\u00e9 \U0001F600`, "café 😀", ""},
		{"quotes escaped or not", `say \"hi\" and 'bye' \'x\'`, `say "hi" and 'bye' 'x'`, ""},
		{"raw quote", `a"b`, `a"b`, ""},
		{"raw utf-8 and binary", "é\xff", "é\xff", ""},
		{"backslash", `a\\b`, `a\b`, ""},
		{"unknown escape", `a\qb`, "", `invalid escape "\\qb" at byte 1`},
		{"short hex", `\x4`, "", "invalid escape"},
		{"trailing backslash", `abc\`, "", "at byte 3"},
		{"surrogate", `\ud800`, "", "invalid escape"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEscapes(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseEscapes(%q) error = %v, want %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("ParseEscapes(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

// FuzzParseEscapes: parsing never panics; any byte string written the way
// strconv.Quote writes it parses back to itself; and text without a
// backslash is taken verbatim.
func FuzzParseEscapes(f *testing.F) {
	for _, s := range []string{"", `PING\r\n`, `\x00`, `\`, `\u00e9`, `"`, "\xff", `\'`, `\400`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseEscapes(s)
		if !strings.Contains(s, `\`) && (err != nil || string(got) != s) {
			t.Fatalf("ParseEscapes(%q) = %q, %v; want it verbatim", s, got, err)
		}
		if err == nil && len(got) > len(s) {
			// Every escape is at least as long as what it encodes.
			t.Fatalf("ParseEscapes(%q) grew to %d bytes", s, len(got))
		}
		q := strconv.Quote(s)
		back, err := ParseEscapes(q[1 : len(q)-1])
		if err != nil {
			t.Fatalf("ParseEscapes of quoted %s: %v", q, err)
		}
		if string(back) != s {
			t.Fatalf("round trip of %q gave %q", s, back)
		}
	})
}

func TestParseExpect(t *testing.T) {
	tests := []struct {
		expect string
		reply  string
		match  bool
	}{
		{"+PONG", "+PONG\r\n", true},
		{"+PONG", "-ERR", false},
		{`OK\r\n`, "+OK\r\n", true},
		{`OK\r\n`, "+OK\n", false},
		{`re:^\+OK`, "+OK ready", true},
		{`re:^\+OK`, "x+OK", false},
		{`re:(?m)^READY$`, "boot\nREADY\n", true},
		{"re:", "anything", true},
		{"", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.expect+"/"+tt.reply, func(t *testing.T) {
			m, err := ParseExpect(tt.expect)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Match([]byte(tt.reply)); got != tt.match {
				t.Fatalf("Match(%q) = %v, want %v", tt.reply, got, tt.match)
			}
			if m.String() != tt.expect {
				t.Fatalf("String() = %q, want %q", m.String(), tt.expect)
			}
		})
	}
	if _, err := ParseExpect("re:a(b"); err == nil || !strings.Contains(err.Error(), "bad regular expression") {
		t.Fatalf("bad regexp error = %v", err)
	}
}

// FuzzParseExpect: never panics, and a literal expect (no "re:") matches a
// reply that contains its decoded bytes.
func FuzzParseExpect(f *testing.F) {
	for _, s := range []string{"+OK", "re:^a+$", "re:(", `\r\n`, "re:\\"} {
		f.Add(s, []byte("xx+OK\r\n"))
	}
	f.Fuzz(func(t *testing.T, expect string, reply []byte) {
		m, err := ParseExpect(expect)
		if err != nil {
			return
		}
		m.Match(reply)
		if strings.HasPrefix(expect, "re:") {
			return
		}
		want, _ := ParseEscapes(expect)
		if !m.Match(append(append(bytes.Clone(reply), want...), reply...)) {
			t.Fatalf("expect %q does not match a reply containing %q", expect, want)
		}
	})
}
