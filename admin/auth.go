package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// guard protects the state-changing endpoints. With a token, the request
// must carry "Authorization: Bearer TOKEN". Without one, changes are allowed
// only on a loopback listener (anyone who can reach it already runs on the
// host), and only with a loopback Host header so that a web page using DNS
// rebinding cannot reach it through the operator's browser.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token := s.Token(); token != "" {
			if !tokenMatches(r.Header.Get("Authorization"), token) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="tierlb admin"`)
				s.writeError(w, http.StatusUnauthorized,
					fmt.Errorf("missing or wrong bearer token: send the admin.token as \"Authorization: Bearer TOKEN\""))
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		if addr := s.listenAddr(); !isLoopback(addr) {
			s.writeError(w, http.StatusForbidden, fmt.Errorf(
				"runtime changes are disabled: admin.token is not set and the admin listener %q is not loopback; "+
					"set admin.token (or TIERLB_ADMIN_TOKEN), or listen on 127.0.0.1", addr))
			return
		}
		if !isLoopback(r.Host) {
			s.writeError(w, http.StatusForbidden, fmt.Errorf(
				"runtime changes without admin.token need a loopback Host header, got %q", r.Host))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// tokenMatches checks an Authorization header in constant time. Hashing
// first makes the compare independent of the token's length too. The scheme
// is case-insensitive (RFC 9110).
func tokenMatches(header, token string) bool {
	scheme, got, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	a, b := sha256.Sum256([]byte(strings.TrimSpace(got))), sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// listenAddr is the bound address once listening, else the configured one.
func (s *Server) listenAddr() string {
	if a := s.Addr(); a != nil {
		return a.String()
	}
	return s.opts.Listen
}

// isLoopback reports whether hostport (or a bare host) names only loopback:
// "localhost", 127.0.0.0/8 or ::1. An empty host (":9090") is every interface.
func isLoopback(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
