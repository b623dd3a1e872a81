package backends

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// StaticBackend is one entry of a service's backends.static list, as the
// config layer decoded it.
type StaticBackend struct {
	// Address is host:port: an IPv4 address, [IPv6], or a DNS name.
	Address string
	// Weight is the relative share of new connections; 0 given explicitly
	// takes none. The config layer passes the default, 1, when it is absent.
	Weight int
	// Priority is the backend's group (0 is tried first).
	Priority int
}

// AddressError says why a backend address was rejected.
type AddressError struct {
	Address string
	Reason  string
}

func (e *AddressError) Error() string {
	return fmt.Sprintf("backend address %q: %s", e.Address, e.Reason)
}

// Errors of StaticSpecs besides *AddressError, for errors.Is.
var (
	ErrBadWeight        = errors.New("weight out of range")
	ErrBadPriority      = errors.New("priority out of range")
	ErrDuplicateBackend = errors.New("duplicate address")
)

// ParseAddress checks a backend address and returns it in canonical form:
// IP addresses as netip prints them (IPv6 compressed, in brackets), names
// lowercased, the port without leading zeros. The port must be a number from
// 1 to 65535; service names such as "http" are not accepted, because a
// backend address is a contract that should not depend on /etc/services.
func ParseAddress(s string) (string, error) {
	bad := func(format string, args ...any) (string, error) {
		return "", &AddressError{Address: s, Reason: fmt.Sprintf(format, args...)}
	}
	if s == "" {
		return bad("empty (want host:port)")
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return bad("contains spaces or control characters (want host:port)")
	}
	host, port, reason := splitHostPort(s)
	if reason != "" {
		return bad("%s", reason)
	}
	portNum, err := parsePort(port)
	if err != nil {
		return bad("%v", err)
	}
	if host == "" {
		return bad("missing host (want host:port)")
	}
	if strings.HasPrefix(s, "[") {
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.Is6() {
			return bad("%q in brackets is not an IPv6 address", host)
		}
		return checkIP(s, ip, portNum)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return checkIP(s, ip, portNum)
	}
	if strings.Trim(host, "0123456789.") == "" {
		return bad("%q is not a valid IPv4 address", host)
	}
	if reason := checkHostname(host); reason != "" {
		return bad("host %q: %s", host, reason)
	}
	return strings.ToLower(host) + ":" + strconv.Itoa(int(portNum)), nil
}

// splitHostPort splits host:port or [host]:port itself, rather than through
// net.SplitHostPort, so that each mistake gets its own reason without
// matching error strings.
func splitHostPort(s string) (host, port, reason string) {
	if rest, ok := strings.CutPrefix(s, "["); ok {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return "", "", "missing ']' after IPv6 address (want [addr]:port)"
		}
		host, rest = rest[:end], rest[end+1:]
		if rest == "" {
			return "", "", "missing port (want [addr]:port)"
		}
		port, ok = strings.CutPrefix(rest, ":")
		if !ok || strings.ContainsAny(host, "[") {
			return "", "", "want [addr]:port"
		}
		return host, port, ""
	}
	if strings.ContainsAny(s, "[]") {
		return "", "", "unbalanced brackets (want host:port, IPv6 as [addr]:port)"
	}
	switch strings.Count(s, ":") {
	case 0:
		return "", "", "missing port (want host:port, IPv6 as [addr]:port)"
	case 1:
		host, port, _ = strings.Cut(s, ":")
		return host, port, ""
	}
	return "", "", "IPv6 address needs brackets (want [addr]:port)"
}

// parsePort accepts decimal 1-65535 and nothing else (no sign, no name).
func parsePort(port string) (uint16, error) {
	if port == "" {
		return 0, errors.New("missing port number (want 1-65535)")
	}
	if strings.Trim(port, "0123456789") != "" {
		return 0, fmt.Errorf("port %q is not a number (want 1-65535)", port)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("port %s out of range (want 1-65535)", port)
	}
	return uint16(n), nil
}

// checkIP rejects addresses a connection cannot be meant for: 0.0.0.0 and
// :: dial the local host on Linux, which is never what a backend list means;
// multicast cannot take a TCP connection.
func checkIP(s string, ip netip.Addr, port uint16) (string, error) {
	switch {
	case ip.IsUnspecified():
		return "", &AddressError{Address: s, Reason: "unspecified address " + ip.String() + " cannot be dialed"}
	case ip.IsMulticast():
		return "", &AddressError{Address: s, Reason: "multicast address " + ip.String() + " cannot take TCP connections"}
	}
	return netip.AddrPortFrom(ip, port).String(), nil
}

// checkHostname checks DNS name syntax: labels of letters, digits, hyphens
// and underscores (Docker and Compose names use them), 1-63 bytes each, 253
// in all; a trailing dot (a fully qualified name, no search domains) is kept.
func checkHostname(host string) string {
	name := strings.TrimSuffix(host, ".")
	if len(name) > 253 {
		return "longer than 253 bytes"
	}
	for label := range strings.SplitSeq(name, ".") {
		switch {
		case label == "":
			return "empty label"
		case len(label) > 63:
			return fmt.Sprintf("label %q longer than 63 bytes", label)
		case label[0] == '-' || label[len(label)-1] == '-':
			return fmt.Sprintf("label %q starts or ends with a hyphen", label)
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Sprintf("invalid character %q (want letters, digits, '-', '_' and '.')", c)
			}
		}
	}
	return ""
}

// StaticSpecs turns a service's static backend list into Specs (ID = the
// canonical address), reporting every bad entry at once.
func StaticSpecs(entries []StaticBackend) ([]Spec, error) {
	var errs []error
	specs := make([]Spec, 0, len(entries))
	seen := make(map[string]int, len(entries))
	for i, e := range entries {
		addr, err := ParseAddress(e.Address)
		if err != nil {
			errs = append(errs, fmt.Errorf("static backend %d: %w", i, err))
			continue
		}
		what := fmt.Sprintf("static backend %d %q", i, addr)
		ok := true
		if e.Weight < 0 || e.Weight > MaxWeight {
			errs = append(errs, fmt.Errorf("%s: %w: %d (want 0-%d)", what, ErrBadWeight, e.Weight, MaxWeight))
			ok = false
		}
		if e.Priority < 0 || e.Priority > MaxPriority {
			errs = append(errs, fmt.Errorf("%s: %w: %d (want 0-%d)", what, ErrBadPriority, e.Priority, MaxPriority))
			ok = false
		}
		if j, dup := seen[addr]; dup {
			errs = append(errs, fmt.Errorf("%s: %w: same as static backend %d", what, ErrDuplicateBackend, j))
			ok = false
		} else {
			seen[addr] = i
		}
		if ok {
			specs = append(specs, Spec{ID: addr, Address: addr, Weight: e.Weight, Priority: e.Priority})
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return specs, nil
}
