package config

import (
	"net"
	"strconv"
	"testing"
)

// FuzzLoadYAML feeds arbitrary bytes through parsing, merging, decoding and
// validation: any input may be rejected, none may panic, and a rejection is
// always a list of errors.
func FuzzLoadYAML(f *testing.F) {
	f.Add([]byte(minimalYAML))
	f.Add([]byte("services: {a: b}"))
	f.Add([]byte("services: [1, [2], {backends: {static: [3, {address: 4}], docker: {selector: [x]}}}]"))
	f.Add([]byte("admin: x\nlog: [1]\nshutdown: {drain_timeout: 1}"))
	f.Add([]byte("? [a]\n: b\n1: {2: 3}"))
	f.Add([]byte("services:\n  - health: ~\n    timeouts: {connect: 1e400}\n    retries: 1.0e20"))
	f.Add([]byte("- a\n- b"))
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := Parse(".yaml", data)
		if err != nil {
			return
		}
		cfg, err := loadDoc(Source{}, doc)
		if err == nil && cfg == nil {
			t.Fatal("no config and no error")
		}
		if err != nil && len(Problems(err)) == 0 {
			t.Fatal("error without problems")
		}
	})
}

// FuzzParseListenAddr checks that an accepted listen address round-trips
// through its canonical form.
func FuzzParseListenAddr(f *testing.F) {
	for _, s := range []string{"0.0.0.0:8080", "[::]:80", ":0", "127.0.0.1:65535", "[fe80::1%eth0]:1", "1.2.3.4:", "[::1]", "a:b:c", "::1:80", "[::ffff:1.2.3.4]:9",
		"0.0.0.0:30000-30099", "[::]:1-1000", ":1-1001", ":9-8", ":0-5", "1.2.3.4:65000-65535"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseListenAddr(s)
		if err != nil {
			return
		}
		if a.Port < 0 || a.Port > 65535 {
			t.Fatalf("%q: port %d out of range", s, a.Port)
		}
		if a.IsRange() && (a.Port < 1 || a.Last <= a.Port || a.Last > 65535 || a.Last-a.Port >= 1000) {
			t.Fatalf("%q: port range %d-%d", s, a.Port, a.Last)
		}
		host := ""
		if a.IP.IsValid() {
			host = a.IP.String()
		}
		port := strconv.Itoa(a.Port)
		if a.IsRange() {
			port += "-" + strconv.Itoa(a.Last)
		}
		canon := net.JoinHostPort(host, port)
		b, err := ParseListenAddr(canon)
		if err != nil || b != a {
			t.Fatalf("%q → %q → %+v, %v; want %+v", s, canon, b, err, a)
		}
		if !a.Conflicts(b) && a.Port != 0 {
			t.Fatalf("%q does not conflict with itself", s)
		}
	})
}

// FuzzParsePrefix checks that an accepted CIDR is masked and re-parses to
// itself.
func FuzzParsePrefix(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", "10.1.2.3/8", "1.2.3.4", "::/0", "fd00::1/8", "::ffff:10.0.0.0/104", "x", "1.2.3.4/33"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePrefix(s)
		if err != nil {
			return
		}
		if p != p.Masked() {
			t.Fatalf("%q → %v is not masked", s, p)
		}
		q, err := parsePrefix(p.String())
		if err != nil || q != p {
			t.Fatalf("%q → %v → %v, %v", s, p, q, err)
		}
	})
}
