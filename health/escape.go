package health

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ParseEscapes turns health.send (or a substring expect) into bytes. Go
// escapes are decoded as in a double-quoted Go string (\r, \n, \t, \\, \",
// \', \x00, \000, \u00e9, \U0001f600); every other byte, including a bare
// double quote and raw UTF-8, is taken as written, so YAML users need not
// escape what they can type.
func ParseEscapes(s string) ([]byte, error) {
	if !strings.Contains(s, `\`) {
		return []byte(s), nil
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		if s[i] != '\\' {
			out = append(out, s[i])
			i++
			continue
		}
		if i+1 < len(s) && s[i+1] == '\'' {
			// UnquoteChar accepts \' only inside single quotes and \"
			// only inside double ones; both are harmless here.
			out = append(out, '\'')
			i += 2
			continue
		}
		value, multibyte, tail, err := strconv.UnquoteChar(s[i:], '"')
		if err != nil {
			return nil, fmt.Errorf("invalid escape %q at byte %d", escapeAt(s, i), i)
		}
		if multibyte {
			out = utf8.AppendRune(out, value)
		} else {
			out = append(out, byte(value))
		}
		i = len(s) - len(tail)
	}
	return out, nil
}

// escapeAt returns the escape starting at s[i] for error messages: the
// backslash and up to the next 9 bytes (enough for \U00000000).
func escapeAt(s string, i int) string {
	end := min(i+10, len(s))
	return s[i:end]
}

// Matcher decides whether a reply so far satisfies health.expect.
type Matcher struct {
	raw    string
	substr []byte
	re     *regexp.Regexp
}

// ParseExpect parses health.expect: "re:" followed by a regular expression
// (RE2 syntax, matched anywhere in the reply unless anchored), or else a
// substring with Go escapes. "" matches any reply, even an empty one.
func ParseExpect(s string) (Matcher, error) {
	if rest, ok := strings.CutPrefix(s, "re:"); ok {
		re, err := regexp.Compile(rest)
		if err != nil {
			return Matcher{}, fmt.Errorf("bad regular expression: %w", err)
		}
		return Matcher{raw: s, re: re}, nil
	}
	b, err := ParseEscapes(s)
	if err != nil {
		return Matcher{}, err
	}
	return Matcher{raw: s, substr: b}, nil
}

// Match reports whether reply contains the expected bytes.
func (m Matcher) Match(reply []byte) bool {
	if m.re != nil {
		return m.re.Match(reply)
	}
	return bytes.Contains(reply, m.substr)
}

// Empty reports whether the matcher expects nothing, so no read is needed.
func (m Matcher) Empty() bool { return m.re == nil && len(m.substr) == 0 }

// String returns the expect as configured.
func (m Matcher) String() string { return m.raw }
