package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/tierlb/tierlb/internal/listenaddr"
)

// ListenAddr is a parsed listen address, comparable for conflict checks.
type ListenAddr struct {
	IP   netip.Addr // invalid (zero) for the wildcard
	Port int        // the first port; 0: the kernel picks a free port
	Last int        // the last port of a range (host:first-last); 0 for one port
}

// IsRange reports whether the address is a port range.
func (a ListenAddr) IsRange() bool { return a.Last != 0 }

// lastPort is the range's last port, or the one port.
func (a ListenAddr) lastPort() int { return max(a.Last, a.Port) }

// wildcard reports whether the address listens on every local address.
func (a ListenAddr) wildcard() bool { return !a.IP.IsValid() || a.IP.IsUnspecified() }

// Conflicts reports whether two listeners cannot both bind: a port in
// common (ranges overlap), and the same address or either one a wildcard
// (Go's [::] is dual-stack). Port 0 never conflicts: each bind gets its
// own port.
func (a ListenAddr) Conflicts(b ListenAddr) bool {
	if a.Port == 0 || b.Port == 0 || a.Port > b.lastPort() || b.Port > a.lastPort() {
		return false
	}
	return a.wildcard() || b.wildcard() || a.IP == b.IP
}

// ParseListenAddr checks a listen address: an IP literal (IPv6 in brackets)
// or nothing for all addresses, and a port 0-65535 or a range of at most
// listenaddr.MaxPorts ports (first-last).
func ParseListenAddr(s string) (ListenAddr, error) {
	var a ListenAddr
	var host string
	var err error
	if _, p, serr := net.SplitHostPort(s); serr == nil && strings.Contains(p, "-") {
		host, a.Port, a.Last, err = listenaddr.Split(s)
		if err != nil {
			return ListenAddr{}, fmt.Errorf("%q: %w", s, err)
		}
	} else if host, a.Port, err = splitHostPort(s, 0); err != nil {
		return ListenAddr{}, err
	}
	if host != "" {
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return ListenAddr{}, fmt.Errorf("%q: listen host must be an IP address or empty, got %q", s, host)
		}
		a.IP = ip.Unmap()
	}
	return a, nil
}

// splitHostPort splits host:port and checks that the port is a number in
// minPort-65535.
func splitHostPort(s string, minPort int) (string, int, error) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return "", 0, fmt.Errorf("%q is not host:port (%s)", s, ae.Err)
		}
		return "", 0, fmt.Errorf("%q is not host:port", s)
	}
	if p == "" || strings.Trim(p, "0123456789") != "" {
		return "", 0, fmt.Errorf("%q: port %q is not a number", s, p)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < minPort || port > 65535 {
		if len(p) > 6 {
			p = p[:6] + "..."
		}
		return "", 0, fmt.Errorf("%q: port %s is out of range (%d-65535)", s, p, minPort)
	}
	return host, port, nil
}

// parsePrefix accepts a CIDR or a bare IP (meaning that one host).
func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR (like 10.0.0.0/8 or fd00::/8)", s)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		return p.Masked(), nil
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR or IP address", s)
	}
	ip = ip.Unmap().WithZone("")
	return netip.PrefixFrom(ip, ip.BitLen()), nil
}

// String is the address in host:port form, ":port" for the wildcard,
// host:first-last for a range.
func (a ListenAddr) String() string {
	port := strconv.Itoa(a.Port)
	if a.IsRange() {
		port += "-" + strconv.Itoa(a.Last)
	}
	if !a.IP.IsValid() {
		return ":" + port
	}
	return net.JoinHostPort(a.IP.String(), port)
}
