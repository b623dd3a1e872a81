package config

import (
	"errors"
	"fmt"
	"slices"

	"github.com/tierlb/tierlb/proxy/sni"
)

// Several services may share a listen address when each sets sni: the
// address's listener reads every ClientHello and routes by its server name.

// conflict reports services[i] and services[j], whose listen addresses
// cannot both be bound; same says they are the same address.
func conflict(c *Config, i, j int, same bool, p *problems) {
	s, o := &c.Services[i], &c.Services[j]
	path := fmt.Sprintf("services[%d]", i)
	switch {
	case same && len(o.SNI) > 0:
		p.add(path+".sni", "empty, but listen %s is shared with services[%d] (%s), which routes by sni: every service on a shared address needs sni names", s.Listen, j, o.Name)
	case same && len(s.SNI) > 0:
		p.add(fmt.Sprintf("services[%d].sni", j), "empty, but listen %s is shared with services[%d] (%s), which routes by sni: every service on a shared address needs sni names", o.Listen, i, s.Name)
	case listensRange(s) || listensRange(o):
		p.add(path+".listen", "%s overlaps services[%d].listen %s: a port range shares no port with another service of the same protocol", s.Listen, j, o.Listen)
	default:
		what := "duplicate listen address"
		if o.Listen != s.Listen {
			what = "listen address overlaps"
		}
		p.add(path+".listen", "%s %s (also services[%d]: %s)", what, s.Listen, j, o.Listen)
	}
}

// listensRange reports whether s listens on a port range.
func listensRange(s *ServiceConfig) bool {
	la, err := ParseListenAddr(s.Listen)
	return err == nil && la.IsRange()
}

// validateShared checks two sni services on one address: no server name
// routed to both, and the same settings for what happens before a
// connection is routed (the PROXY header, the ClientHello timeout, the
// socket).
func validateShared(c *Config, i, j int, p *problems) {
	s := &c.Services[i]
	for _, sp := range sharedProblems(s, &c.Services[j], fmt.Sprintf("services[%d]", j)) {
		p.add(fmt.Sprintf("services[%d].%s", i, sp.key), "%s", sp.msg)
	}
}

// CanShare says why services a and b cannot share their listen address,
// or nil when they can: both set sni, with the same address, distinct
// names and the settings a shared listener needs them to agree on.
func CanShare(a, b *ServiceConfig) error {
	la, aerr := ParseListenAddr(a.Listen)
	lb, berr := ParseListenAddr(b.Listen)
	switch {
	case aerr != nil || berr != nil:
		return fmt.Errorf("listen %s or %s does not parse", a.Listen, b.Listen)
	case len(a.SNI) == 0 || len(b.SNI) == 0:
		return fmt.Errorf("listen %s is taken by %s: services share an address only when each sets sni", a.Listen, b.Name)
	case la != lb:
		return fmt.Errorf("listen %s overlaps %s of %s", a.Listen, b.Listen, b.Name)
	}
	var errs []error
	for _, sp := range sharedProblems(a, b, "service "+b.Name) {
		errs = append(errs, fmt.Errorf("%s: %s", sp.key, sp.msg))
	}
	return errors.Join(errs...)
}

type sharedProblem struct{ key, msg string }

// sharedProblems lists what keeps s from sharing its address with o,
// named other in the messages.
func sharedProblems(s, o *ServiceConfig, other string) []sharedProblem {
	var out []sharedProblem
	theirs := map[string]int{}
	for k, n := range o.SNI {
		if norm, err := sni.Normalize(n); err == nil {
			theirs[norm] = k
		}
	}
	for k, n := range s.SNI {
		norm, err := sni.Normalize(n)
		if err != nil {
			continue // reported by validateService
		}
		if l, dup := theirs[norm]; dup {
			out = append(out, sharedProblem{fmt.Sprintf("sni[%d]", k),
				fmt.Sprintf("%q is also routed to %s (sni[%d]) on listen %s: a server name goes to one service", n, other, l, s.Listen)})
		}
	}
	agree := func(key string, same bool, mine, their any) {
		if !same {
			out = append(out, sharedProblem{key,
				fmt.Sprintf("%v, but %s has %v on the listen address they share (%s): services sharing an address must agree on %s", mine, other, their, s.Listen, key)})
		}
	}
	agree("accept_proxy_protocol", slices.Equal(s.AcceptProxyProto, o.AcceptProxyProto), s.AcceptProxyProto, o.AcceptProxyProto)
	agree("timeouts.client_hello", s.Timeouts.ClientHello == o.Timeouts.ClientHello, s.Timeouts.ClientHello, o.Timeouts.ClientHello)
	agree("reuse_port", s.ReusePort == o.ReusePort, s.ReusePort, o.ReusePort)
	return out
}
