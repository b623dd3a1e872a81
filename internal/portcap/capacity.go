package portcap

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"
)

// Ports is how many local ports the kernel may choose for a new outgoing
// connection: the range less the reserved ports in it.
func (s Settings) Ports() int {
	return max(0, s.PortHigh-s.PortLow+1-s.Reserved)
}

// Reuses reports whether a new connection may take a local port whose last
// connection to the same backend address is still in TIME_WAIT. The
// kernel does so (tcp_twsk_unique) only when tcp_tw_reuse allows it for
// this kind of address and the old connection carried timestamps, which
// needs tcp_timestamps here (and on the backend, which this namespace
// cannot see). The new connection then starts its sequence numbers past
// the old one's window and keeps the old peer's last timestamp, so PAWS
// drops any stray segment of the old connection.
func (s Settings) Reuses(loopback bool) bool {
	if s.Timestamps == 0 {
		return false
	}
	return s.TWReuse == 1 || (s.TWReuse == 2 && loopback)
}

// Hold is how long one connection that the client closed first keeps its
// local port from the next connection to the same backend address.
func (s Settings) Hold(loopback bool) time.Duration {
	if !s.Reuses(loopback) {
		return TimeWait
	}
	if s.ReuseDelay <= 0 {
		return defaultReuseDelay
	}
	return s.ReuseDelay
}

// PerSecond is how many new connections per second one backend address can
// take, sustained, when every client closes first: the free ports, each
// held for Hold. Loopback is whether the backend address is on loopback
// (tcp_tw_reuse 2 reuses ports only there).
func (s Settings) PerSecond(loopback bool) float64 {
	return float64(s.Ports()) / s.Hold(loopback).Seconds()
}

// ForAddress is PerSecond for a backend address such as "10.0.1.4:8080";
// an address that does not parse counts as not on loopback.
func (s Settings) ForAddress(addr string) float64 {
	return s.PerSecond(IsLoopback(addr))
}

// IsLoopback reports whether a host:port names a loopback address, as the
// kernel's tcp_tw_reuse 2 test does (127.0.0.0/8 and ::1; v4-mapped too).
func IsLoopback(addr string) bool {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return false
	}
	return ap.Addr().Unmap().IsLoopback()
}

// reuseText names tcp_tw_reuse's value.
func (s Settings) reuseText() string {
	switch s.TWReuse {
	case 0:
		return "off"
	case 1:
		return "on"
	}
	return "loopback only"
}

// String is the settings and what they come to, in one line, as
// `tierlb check` prints it. Rates are rounded down: they are ceilings.
func (s Settings) String() string {
	delay := s.ReuseDelay.String()
	if s.ReuseDelayFixed {
		delay += " (fixed)"
	}
	line := fmt.Sprintf("%d new connections/s per backend address (%d local ports %d-%d, %d reserved; each held %s: tcp_tw_reuse=%d (%s), tcp_timestamps=%d, tcp_tw_reuse_delay=%s)",
		int(s.PerSecond(false)), s.Ports(), s.PortLow, s.PortHigh, s.Reserved, s.Hold(false), s.TWReuse, s.reuseText(), s.Timestamps, delay)
	if lo := s.PerSecond(true); lo != s.PerSecond(false) {
		line += fmt.Sprintf("; %d/s to a backend on loopback", int(lo))
	}
	return line
}

// LogAttrs are the settings and what they come to, as log fields.
func (s Settings) LogAttrs() []any {
	return []any{
		slog.Int("per_backend_per_second", int(s.PerSecond(false))),
		slog.Int("loopback_per_second", int(s.PerSecond(true))),
		slog.Int("local_ports", s.Ports()),
		slog.String("ip_local_port_range", fmt.Sprintf("%d-%d", s.PortLow, s.PortHigh)),
		slog.Int("reserved_ports", s.Reserved),
		slog.Int("tcp_tw_reuse", s.TWReuse),
		slog.Duration("tcp_tw_reuse_delay", s.ReuseDelay),
		slog.Int("tcp_timestamps", s.Timestamps),
		slog.Duration("port_held", s.Hold(false)),
	}
}
