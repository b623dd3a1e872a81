package portcap

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"
)

// TimeWait is how long Linux keeps a socket in TIME_WAIT (TCP_TIMEWAIT_LEN).
// It is a constant of the kernel, not a setting: tcp_fin_timeout is the
// FIN_WAIT_2 timeout, whatever many tuning guides say.
const TimeWait = 60 * time.Second

// defaultReuseDelay is how long a TIME_WAIT socket must have existed before
// tcp_tw_reuse may take its port, on kernels without tcp_tw_reuse_delay
// (older kernels), where it is a fixed second.
const defaultReuseDelay = time.Second

// The files Read takes, relative to /proc/sys/net/ipv4.
const (
	FilePortRange     = "ip_local_port_range"
	FileReservedPorts = "ip_local_reserved_ports"
	FileTWReuse       = "tcp_tw_reuse"
	FileTWReuseDelay  = "tcp_tw_reuse_delay"
	FileTimestamps    = "tcp_timestamps"
)

// Settings are one network namespace's sysctls that decide how fast local
// ports toward one backend address come back.
type Settings struct {
	// PortLow and PortHigh are ip_local_port_range, both included.
	PortLow, PortHigh int
	// Reserved is how many ports of that range ip_local_reserved_ports
	// keeps out of automatic choice (connect and bind to port 0).
	Reserved int
	// TWReuse is tcp_tw_reuse: 0 never, 1 always, 2 (the default) only
	// for connections over loopback.
	TWReuse int
	// ReuseDelay is tcp_tw_reuse_delay: how long a socket must have been
	// in TIME_WAIT before its port may be reused.
	ReuseDelay time.Duration
	// ReuseDelayFixed is true when the kernel has no tcp_tw_reuse_delay
	// and ReuseDelay is its fixed second.
	ReuseDelayFixed bool
	// Timestamps is tcp_timestamps: 0 off, 1 on with a random offset per
	// connection, 2 on without one. Reuse needs them: they are what lets
	// the new connection tell the old one's stray segments apart (PAWS).
	Timestamps int
}

// Read reads the settings from fsys, the namespace's /proc/sys/net/ipv4.
// tcp_tw_reuse_delay may be missing (older kernels); any other
// missing or malformed file is an error naming it.
func Read(fsys fs.FS) (Settings, error) {
	var s Settings
	var errs []error
	read := func(name string, parse func(string) error) {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			if name == FileTWReuseDelay && errors.Is(err, fs.ErrNotExist) {
				s.ReuseDelay, s.ReuseDelayFixed = defaultReuseDelay, true
				return
			}
			errs = append(errs, fmt.Errorf("read %s: %w", name, err))
			return
		}
		if err := parse(string(b)); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	read(FilePortRange, func(v string) (err error) {
		s.PortLow, s.PortHigh, err = ParsePortRange(v)
		return err
	})
	read(FileTWReuse, func(v string) (err error) {
		s.TWReuse, err = parseChoice(v, 2)
		return err
	})
	read(FileTimestamps, func(v string) (err error) {
		s.Timestamps, err = parseChoice(v, 2)
		return err
	})
	read(FileTWReuseDelay, func(v string) error {
		ms, err := parseUint(v)
		if err != nil {
			return err
		}
		if ms < 1 {
			return fmt.Errorf("%d: want milliseconds, at least 1", ms)
		}
		s.ReuseDelay = time.Duration(ms) * time.Millisecond
		return nil
	})
	var reserved []PortSpan
	read(FileReservedPorts, func(v string) (err error) {
		reserved, err = ParseReservedPorts(v)
		return err
	})
	if err := errors.Join(errs...); err != nil {
		return Settings{}, err
	}
	s.Reserved = reservedIn(reserved, s.PortLow, s.PortHigh)
	return s, nil
}

// ParsePortRange parses ip_local_port_range: two ports separated by white
// space, the first not above the second.
func ParsePortRange(v string) (low, high int, err error) {
	f := strings.Fields(v)
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("%q: want two ports, such as \"32768 60999\"", strings.TrimSpace(v))
	}
	if low, err = parsePort(f[0]); err != nil {
		return 0, 0, err
	}
	if high, err = parsePort(f[1]); err != nil {
		return 0, 0, err
	}
	if low > high {
		return 0, 0, fmt.Errorf("%q: the first port is above the second", strings.TrimSpace(v))
	}
	return low, high, nil
}

// PortSpan is a range of ports, both ends included.
type PortSpan struct{ Low, High int }

// ParseReservedPorts parses ip_local_reserved_ports: empty, or ports and
// ranges separated by commas, such as "8080,9000-9010".
func ParseReservedPorts(v string) ([]PortSpan, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, nil
	}
	var out []PortSpan
	for item := range strings.SplitSeq(v, ",") {
		lo, hi, isRange := strings.Cut(item, "-")
		low, err := parsePort(lo)
		if err != nil {
			return nil, err
		}
		high := low
		if isRange {
			if high, err = parsePort(hi); err != nil {
				return nil, err
			}
			if low > high {
				return nil, fmt.Errorf("%q: the first port is above the second", item)
			}
		}
		out = append(out, PortSpan{low, high})
	}
	return out, nil
}

// reservedIn counts the distinct ports of spans within [low, high].
func reservedIn(spans []PortSpan, low, high int) int {
	if high < low {
		return 0
	}
	seen := make([]bool, high-low+1)
	n := 0
	for _, sp := range spans {
		for p := max(sp.Low, low); p <= min(sp.High, high); p++ {
			if !seen[p-low] {
				seen[p-low] = true
				n++
			}
		}
	}
	return n
}

func parsePort(v string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 || n > 65535 {
		return 0, fmt.Errorf("%q: want a port, 0 to 65535", v)
	}
	return n, nil
}

// parseChoice parses a sysctl that takes 0 to top.
func parseChoice(v string, top int) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 || n > top {
		return 0, fmt.Errorf("%q: want 0 to %d", strings.TrimSpace(v), top)
	}
	return n, nil
}

func parseUint(v string) (uint64, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q: want a whole number of milliseconds", strings.TrimSpace(v))
	}
	return n, nil
}
