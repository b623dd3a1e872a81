package handover

import (
	"fmt"
	"net/netip"
)

// Desc describes a listening socket as the kernel sees it: what a process
// needs to know to tell which of its listen addresses it serves.
type Desc struct {
	Network   string         `json:"network"` // "tcp" (listening) or "udp"
	Addr      netip.AddrPort `json:"addr"`    // the bound address (getsockname)
	ReusePort bool           `json:"reuse_port,omitempty"`
	// V6Only is set on an IPv6 socket that does not take IPv4 too; Go
	// binds a wildcard address as [::] with V6Only off.
	V6Only bool `json:"v6only,omitempty"`
}

func (d Desc) String() string {
	s := d.Network + " " + d.Addr.String()
	if d.ReusePort {
		s += " (SO_REUSEPORT)"
	}
	if d.V6Only {
		s += " (IPv6 only)"
	}
	return s
}

// Matches reports whether the socket is what binding network and addr
// would give: the same protocol and port, and the same IP, where every
// wildcard (none, 0.0.0.0 or [::]) is one, since Go binds each of them as
// a dual-stack [::]. Port 0 never matches: the kernel would pick a new one.
func (d Desc) Matches(network string, addr netip.AddrPort) bool {
	if network != d.Network || addr.Port() == 0 || addr.Port() != d.Addr.Port() {
		return false
	}
	want, have := addr.Addr().Unmap(), d.Addr.Addr().Unmap()
	if wild(want) || wild(have) {
		return wild(want) && wild(have) && !d.V6Only
	}
	return want == have
}

func wild(a netip.Addr) bool { return !a.IsValid() || a.IsUnspecified() }

// check refuses a description that cannot be a listening socket, before
// anything is compared with it.
func (d Desc) check() error {
	if d.Network != "tcp" && d.Network != "udp" {
		return fmt.Errorf("network %q is not tcp or udp", d.Network)
	}
	if !d.Addr.IsValid() || d.Addr.Port() == 0 {
		return fmt.Errorf("%s: not a bound address", d.Addr)
	}
	return nil
}
