// Package listenaddr reads a listen address that may name a port range,
// "host:first-last" (0.0.0.0:30000-30099), for the packages that bind it
// (proxy, proxy/udp) and those that check it (config, Docker labels).
//
//	addrs, err := listenaddr.Expand("0.0.0.0:30000-30002")
//	// ["0.0.0.0:30000" "0.0.0.0:30001" "0.0.0.0:30002"]
package listenaddr

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// MaxPorts bounds a range: each port is a socket (and, for UDP, one per
// event loop), so a range is for the tens to hundreds of ports of passive
// FTP, RTP or game servers, not for the whole port space.
const MaxPorts = 1000

// Split splits s into its host and its ports: first == last for a single
// port. A range needs 1 <= first < last <= 65535 and at most MaxPorts
// ports; a single port may be 0 (the kernel picks one).
func Split(s string) (host string, first, last int, err error) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, 0, err
	}
	lo, hi, isRange := strings.Cut(p, "-")
	first, err = number(lo)
	if err != nil {
		return "", 0, 0, fmt.Errorf("port %q: %w", p, err)
	}
	if !isRange {
		return host, first, first, nil
	}
	last, err = number(hi)
	switch {
	case err != nil:
		return "", 0, 0, fmt.Errorf("port range %q: %w", p, err)
	case first == 0:
		return "", 0, 0, fmt.Errorf("port range %q: starts at 0; want ports from 1", p)
	case last <= first:
		return "", 0, 0, fmt.Errorf("port range %q: want the first port below the last", p)
	case last-first+1 > MaxPorts:
		return "", 0, 0, fmt.Errorf("port range %q: %d ports; at most %d", p, last-first+1, MaxPorts)
	}
	return host, first, last, nil
}

// number reads a port: decimal digits, 0-65535.
func number(s string) (int, error) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if len(s) > 5 {
		return 0, fmt.Errorf("%.6s... is out of range (0-65535)", s)
	}
	n, _ := strconv.Atoi(s)
	if n > 65535 {
		return 0, fmt.Errorf("%d is out of range (0-65535)", n)
	}
	return n, nil
}

// Expand returns one host:port address per port of s.
func Expand(s string) ([]string, error) {
	host, first, last, err := Split(s)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: %w", s, err)
	}
	out := make([]string, 0, last-first+1)
	for p := first; p <= last; p++ {
		out = append(out, net.JoinHostPort(host, strconv.Itoa(p)))
	}
	return out, nil
}
