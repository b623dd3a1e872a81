package health

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// The check types, as written in the config's health.type.
const (
	TypeTCP        = "tcp"
	TypeHTTP       = "http"
	TypeSendExpect = "send-expect"
	TypeDocker     = "docker"
	TypeNone       = "none"
)

// Defaults for zero Config fields; cmd/ may use DefaultConfig to show them.
const (
	DefaultInterval         = 2 * time.Second
	DefaultTimeout          = time.Second
	DefaultRise             = 2
	DefaultFall             = 3
	DefaultHTTPPath         = "/healthz"
	DefaultHTTPExpectStatus = "200-399"
	DefaultFailTimeout      = 10 * time.Second
)

// Config is one service's health settings, mirroring the health keys of
// SPEC.md. Zero values mean the defaults above, except Passive.MaxFails,
// where 0 is a user's way to turn passive checks off (nginx's max_fails=0).
type Config struct {
	// Type is tcp (the default), http, send-expect, docker or none.
	Type string
	// Interval is the time between the end of one probe and the start of the
	// next, before jitter.
	Interval time.Duration
	// Timeout bounds one probe.
	Timeout time.Duration
	// Rise is how many consecutive passing probes bring a down backend up.
	Rise int
	// Fall is how many consecutive failing probes take an up backend down.
	Fall int
	// HTTPPath is the path of the GET request of an http check.
	HTTPPath string
	// HTTPHost is the Host header of an http check; "" uses the address.
	HTTPHost string
	// HTTPExpectStatus lists the passing statuses: "200-399", "200,204,300-399".
	HTTPExpectStatus string
	// Send is written after connecting (send-expect); Go escapes allowed.
	Send string
	// Expect must appear in the reply (send-expect): a substring, with Go
	// escapes allowed, or "re:" followed by a regular expression.
	Expect string
	// Passive configures ejection on consecutive dial failures.
	Passive PassiveConfig
	// Network is the service's protocol: "tcp" (the default) or "udp". A
	// UDP service takes send-expect (one datagram out, a matching one
	// back), docker or none.
	Network string
}

// The networks a service's checks run over.
const (
	NetworkTCP = "tcp"
	NetworkUDP = "udp"
)

// PassiveConfig is health.passive: MaxFails consecutive dial failures eject a
// backend for FailTimeout. MaxFails 0 disables passive checks.
type PassiveConfig struct {
	MaxFails    int
	FailTimeout time.Duration // 0 means DefaultFailTimeout
}

// DefaultConfig returns the config every zero field falls back to, with
// passive checks on as in SPEC.md (max_fails 3).
func DefaultConfig() Config {
	return Config{
		Type:             TypeTCP,
		Interval:         DefaultInterval,
		Timeout:          DefaultTimeout,
		Rise:             DefaultRise,
		Fall:             DefaultFall,
		HTTPPath:         DefaultHTTPPath,
		HTTPExpectStatus: DefaultHTTPExpectStatus,
		Passive:          PassiveConfig{MaxFails: 3, FailTimeout: DefaultFailTimeout},
	}
}

// WithDefaults returns c with every zero field (but Passive.MaxFails) set to
// its default, as the monitor will run it.
func (c Config) WithDefaults() Config {
	if c.Type == "" {
		c.Type = TypeTCP
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Rise == 0 {
		c.Rise = DefaultRise
	}
	if c.Fall == 0 {
		c.Fall = DefaultFall
	}
	if c.HTTPPath == "" {
		c.HTTPPath = DefaultHTTPPath
	}
	if c.HTTPExpectStatus == "" {
		c.HTTPExpectStatus = DefaultHTTPExpectStatus
	}
	if c.Passive.FailTimeout == 0 {
		c.Passive.FailTimeout = DefaultFailTimeout
	}
	return c
}

// Validate reports every problem at once, joined with errors.Join. Each
// names its key as SPEC.md spells it under a service ("health.timeout: ..."),
// so cmd/ can prefix "services[i].". Fields irrelevant to the type are still
// checked when set: a broken value is a mistake whatever the type.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("health.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	switch c.Type {
	case "", TypeTCP, TypeHTTP, TypeSendExpect, TypeDocker, TypeNone:
	default:
		bad("type", "unknown type %q (want tcp, http, send-expect, docker or none)", c.Type)
	}
	if c.Interval < 0 {
		bad("interval", "must be positive, got %v", c.Interval)
	}
	if c.Timeout < 0 {
		bad("timeout", "must be positive, got %v", c.Timeout)
	}
	if c.Rise < 0 {
		bad("rise", "must be at least 1, got %d", c.Rise)
	}
	if c.Fall < 0 {
		bad("fall", "must be at least 1, got %d", c.Fall)
	}
	if c.HTTPPath != "" && !strings.HasPrefix(c.HTTPPath, "/") {
		bad("http.path", "must start with \"/\", got %q", c.HTTPPath)
	}
	if strings.ContainsFunc(c.HTTPPath, isSpaceOrControl) {
		bad("http.path", "must not contain spaces or control characters, got %q", c.HTTPPath)
	}
	if strings.ContainsFunc(c.HTTPHost, isSpaceOrControl) || strings.ContainsAny(c.HTTPHost, "/?#@") {
		bad("http.host", "not a valid Host header %q", c.HTTPHost)
	}
	if c.HTTPExpectStatus != "" {
		if _, err := ParseStatusRanges(c.HTTPExpectStatus); err != nil {
			bad("http.expect_status", "%v", err)
		}
	}
	if _, err := ParseEscapes(c.Send); err != nil {
		bad("send", "%v", err)
	}
	if _, err := ParseExpect(c.Expect); err != nil {
		bad("expect", "%v", err)
	}
	if c.Type == TypeSendExpect && c.Send == "" && c.Expect == "" {
		bad("expect", "type send-expect needs send, expect or both")
	}
	switch c.Network {
	case "", NetworkTCP:
	case NetworkUDP:
		switch c.Type {
		case "", TypeTCP, TypeHTTP:
			bad("type", "%q checks TCP; a UDP service takes send-expect, docker or none", cmpOr(c.Type, TypeTCP))
		case TypeSendExpect:
			if c.Expect == "" {
				bad("expect", "send-expect over UDP needs expect: a datagram sent proves nothing")
			}
		}
	default:
		errs = append(errs, fmt.Errorf("protocol: unknown %q (want tcp or udp)", c.Network))
	}
	if c.Passive.MaxFails < 0 {
		bad("passive.max_fails", "must be 0 (off) or more, got %d", c.Passive.MaxFails)
	}
	if c.Passive.FailTimeout < 0 {
		bad("passive.fail_timeout", "must be positive, got %v", c.Passive.FailTimeout)
	}
	return errors.Join(errs...)
}

func cmpOr(a, b string) string {
	if a == "" {
		return b
	}
	return a
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }
