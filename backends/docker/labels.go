package docker

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tierlb/tierlb/backends"
	"github.com/tierlb/tierlb/internal/listenaddr"
)

// labels is what one container's tierlb labels say, checked.
type labels struct {
	Service  string // tierlb.service; "" when absent
	Port     int    // tierlb.port; 0 when absent
	Network  string // tierlb.network; "" when absent
	Weight   int    // tierlb.weight; 1 when absent
	Priority int    // tierlb.priority; 0 when absent
	// Enable is tierlb.enable: +1 true, -1 false, 0 absent.
	Enable int
	Listen string // tierlb.listen; "" when absent
	// Settings holds the service-level labels (balance, health.*, ...) keyed
	// like the config file, without the prefix: "health.http.path".
	Settings map[string]string
	// Unknown lists labels under the prefix that mean nothing to tierlb;
	// they are reported, not fatal, so one typo does not take a replica out.
	Unknown []string
}

// LabelError says which label is wrong and what was expected.
type LabelError struct {
	Label string // the full label key, e.g. tierlb.weight
	Value string
	Want  string
}

func (e *LabelError) Error() string {
	return fmt.Sprintf("label %s=%q: want %s", e.Label, e.Value, e.Want)
}

// Limits for numeric labels: the same as for static backends.
const (
	maxWeight   = backends.MaxWeight
	maxPriority = backends.MaxPriority
)

var balances = []string{"roundrobin", "leastconn", "random2", "sourcehash"}
var healthTypes = []string{"tcp", "http", "send-expect", "docker", "none"}

// settingCheck validates one service-level label value; it returns what was
// expected when the value is wrong, "" when it is fine.
type settingCheck func(v string) (want string)

// serviceSettings are the labels a label-declared service may set, keyed
// like the config file. They are passed on as strings; cmd/ turns them into
// a service config exactly as if they came from the file.
var serviceSettings = map[string]settingCheck{
	"balance":                     oneOf(balances...),
	"health.type":                 oneOf(healthTypes...),
	"health.interval":             positiveDuration,
	"health.timeout":              positiveDuration,
	"health.rise":                 intRange(1, 1000),
	"health.fall":                 intRange(1, 1000),
	"health.http.path":            httpPath,
	"health.http.expect_status":   statusRanges,
	"health.http.host":            anything,
	"health.send":                 goEscapes,
	"health.expect":               anything,
	"health.passive.max_fails":    intRange(0, 1000000),
	"health.passive.fail_timeout": positiveDuration,
	"slow_start":                  nonNegativeDuration,
	"timeouts.connect":            positiveDuration,
	"timeouts.idle":               positiveDuration,
	"timeouts.half_close":         positiveDuration,
	"timeouts.client_hello":       positiveDuration,
	"timeouts.first_data":         positiveDuration,
	"retries":                     intRange(0, 100),
	"max_conns":                   intRange(0, 1<<30),
	"max_conns_per_backend":       intRange(0, 1<<30),
	"max_conns_per_client":        intRange(0, 1<<30),
	"defer_dial":                  boolean,
	"on_backend_down":             oneOf("keep", "close"),
	"proxy_protocol":              oneOf("", "v1", "v2"),
	"accept_proxy_protocol":       cidrList,
	"allow":                       cidrList,
	"reuse_port":                  boolean,
	"zero_copy":                   oneOf("auto", "off"),
	// Server names are checked where the service is built, with the
	// file's sni key.
	"sni":                 anything,
	"protocol":            oneOf("tcp", "udp"),
	"udp.session_timeout": positiveDuration,
	"udp.max_sessions":    intRange(0, 1<<30),
	"udp.responses":       intRange(0, 1<<30),
}

// parsedLabels is what parseLabels made of a container's labels: the
// values, or the error that names every bad label.
type parsedLabels struct {
	labels
	err error
}

// parse reads a container's tierlb labels into a record's parsedLabels.
func parse(prefix string, all map[string]string) *parsedLabels {
	l, err := parseLabels(prefix, all)
	return &parsedLabels{labels: l, err: err}
}

// labelCache lets the records of containers whose tierlb labels are the
// same share one parsedLabels: at 10,000 replicas of 100 services, 100
// instead of 10,000 (112 bytes a record). A record keeps what it was
// given, so the cache may forget entries at any time: it is cleared when
// it holds maxShared, which bounds it whatever containers come and go.
type labelCache struct {
	mu     sync.Mutex
	shared map[string]*parsedLabels // by the record's tierlb labels (labelKey)
}

const maxShared = 4096

// share gives c the parsed labels of an earlier record with the same
// tierlb labels, or makes c's the ones later records get. c.Labels must be
// the label map c.labels was parsed from, as fromRow and fromInspect make
// them.
func (lc *labelCache) share(c *ctr, prefix string) {
	key := labelKey(c.Labels, prefix+".")
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if l, ok := lc.shared[key]; ok {
		c.labels = l
		return
	}
	if lc.shared == nil || len(lc.shared) >= maxShared {
		lc.shared = map[string]*parsedLabels{}
	}
	lc.shared[key] = c.labels
}

// labelKey writes the labels under prefix as one string: each key and
// value preceded by its length, so that no two sets share a key.
func labelKey(l labelSet, prefix string) string {
	var b []byte
	for _, p := range l {
		k := p.key.Value()
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		v := p.value.Value()
		b = strconv.AppendInt(b, int64(len(k)), 10)
		b = append(b, ':')
		b = append(b, k...)
		b = strconv.AppendInt(b, int64(len(v)), 10)
		b = append(b, ':')
		b = append(b, v...)
	}
	return string(b)
}

// parseLabels reads the labels under prefix ("tierlb") from a container's
// label map. Every bad label is reported, joined, in label order.
func parseLabels(prefix string, all map[string]string) (labels, error) {
	l := labels{Weight: 1}
	p := prefix + "."
	keys := make([]string, 0, len(all))
	for k := range all {
		if strings.HasPrefix(k, p) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys) // errors in a stable order, not map order
	var errs []error
	bad := func(k, v, want string) { errs = append(errs, &LabelError{Label: k, Value: v, Want: want}) }
	for _, k := range keys {
		v := all[k]
		name := strings.TrimPrefix(k, p)
		switch name {
		case "service":
			if !validName(v) {
				bad(k, v, "a service name (letters, digits, '.', '_', '-'; at most 64, starting with a letter or digit)")
				continue
			}
			l.Service = v
		case "port":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 65535 {
				bad(k, v, "a port from 1 to 65535")
				continue
			}
			l.Port = n
		case "network":
			if !validName(v) {
				bad(k, v, "a Docker network name")
				continue
			}
			l.Network = v
		case "weight":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > maxWeight {
				bad(k, v, fmt.Sprintf("an integer from 0 to %d (relative share of new connections)", maxWeight))
				continue
			}
			l.Weight = n
		case "priority":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > maxPriority {
				bad(k, v, fmt.Sprintf("an integer from 0 to %d (lower groups are used first)", maxPriority))
				continue
			}
			l.Priority = n
		case "enable":
			b, err := strconv.ParseBool(v)
			if err != nil {
				bad(k, v, "true or false")
				continue
			}
			l.Enable = -1
			if b {
				l.Enable = 1
			}
		case "listen":
			if want := listenAddr(v); want != "" {
				bad(k, v, want)
				continue
			}
			l.Listen = v
		default:
			check, ok := serviceSettings[name]
			if !ok {
				l.Unknown = append(l.Unknown, k)
				continue
			}
			if want := check(v); want != "" {
				bad(k, v, want)
				continue
			}
			if l.Settings == nil {
				l.Settings = map[string]string{}
			}
			l.Settings[name] = v
		}
	}
	return l, errors.Join(errs...)
}

// validName accepts Docker-style object names, which are also safe as
// metric label values and URL path segments.
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case i > 0 && (r == '.' || r == '_' || r == '-'):
		default:
			return false
		}
	}
	return true
}

func listenAddr(v string) string {
	const want = "HOST:PORT with an IP (or empty) host and a port from 1 to 65535, or a range of at most 1000 ports, e.g. 0.0.0.0:8080, [::]:8080 or 0.0.0.0:30000-30099"
	host, first, _, err := listenaddr.Split(v)
	if err != nil || first < 1 {
		return want
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			return want
		}
	}
	return ""
}

func oneOf(vals ...string) settingCheck {
	return func(v string) string {
		if slices.Contains(vals, v) {
			return ""
		}
		var q []string
		for _, s := range vals {
			q = append(q, strconv.Quote(s))
		}
		return "one of " + strings.Join(q, ", ")
	}
}

func intRange(lo, hi int) settingCheck {
	return func(v string) string {
		if n, err := strconv.Atoi(v); err == nil && n >= lo && n <= hi {
			return ""
		}
		return fmt.Sprintf("an integer from %d to %d", lo, hi)
	}
}

func anything(string) string { return "" }

func boolean(v string) string {
	if _, err := strconv.ParseBool(v); err != nil {
		return "true or false"
	}
	return ""
}

func positiveDuration(v string) string {
	if d, err := time.ParseDuration(v); err != nil || d <= 0 {
		return "a positive Go duration such as 2s or 500ms"
	}
	return ""
}

func nonNegativeDuration(v string) string {
	if d, err := time.ParseDuration(v); err != nil || d < 0 {
		return "a Go duration such as 0s or 30s"
	}
	return ""
}

func httpPath(v string) string {
	if !strings.HasPrefix(v, "/") || strings.ContainsAny(v, " \t\r\n") {
		return "an absolute URL path without spaces, e.g. /healthz"
	}
	return ""
}

// statusRanges accepts "200", "200-399" or a comma list of those.
func statusRanges(v string) string {
	const want = "HTTP status codes or ranges from 100 to 599, e.g. 200-399 or 200,204"
	for part := range strings.SplitSeq(v, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		if !isRange {
			hi = lo
		}
		a, err1 := strconv.Atoi(lo)
		b, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil || a < 100 || b > 599 || a > b {
			return want
		}
	}
	return ""
}

// goEscapes accepts what a Go interpreted string literal accepts between
// its quotes (\r\n, \x00, ...), since health.send is written that way.
func goEscapes(v string) string {
	for s := v; s != ""; {
		if s[0] == '"' { // a bare quote is fine outside a literal
			s = s[1:]
			continue
		}
		_, _, tail, err := strconv.UnquoteChar(s, '"')
		if err != nil {
			return `text with valid Go escapes such as \r\n or \x00`
		}
		s = tail
	}
	return ""
}

func cidrList(v string) string {
	for part := range strings.SplitSeq(v, ",") {
		if _, err := netip.ParsePrefix(strings.TrimSpace(part)); err != nil {
			return "a comma-separated list of CIDRs, e.g. 10.0.0.0/8,192.168.1.0/24"
		}
	}
	return ""
}
