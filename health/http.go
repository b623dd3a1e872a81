package health

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
)

// maxHTTPHeader bounds the response header an http check reads; a backend
// cannot make the balancer buffer more than this per probe.
const maxHTTPHeader = 64 << 10

// HTTPChecker passes when GET Path answers with a status in Status. Only the
// status line and headers are read; redirects are not followed (a 3xx is a
// status like any other) and no proxy from the environment is used.
type HTTPChecker struct {
	Path   string       // request path and query, starting with "/"
	Host   string       // Host header; "" sends the address
	Status StatusRanges // accepted statuses

	client *http.Client
}

// NewHTTPChecker returns a checker with its own transport: no keep-alive, so
// every probe opens a fresh connection like a new client would.
func NewHTTPChecker(path, host string, status StatusRanges) *HTTPChecker {
	var d net.Dialer
	tr := &http.Transport{
		Proxy:                  nil, // never route probes through HTTP_PROXY
		DialContext:            d.DialContext,
		DisableKeepAlives:      true,
		DisableCompression:     true,
		MaxResponseHeaderBytes: maxHTTPHeader,
	}
	return &HTTPChecker{
		Path:   path,
		Host:   host,
		Status: status,
		client: &http.Client{
			Transport: tr,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}
}

// Check sends one GET to addr.
func (h *HTTPChecker) Check(ctx context.Context, addr string) error {
	u, err := url.Parse("http://" + addr + h.Path)
	if err != nil {
		return fmt.Errorf("http check url for %s%s: %w", addr, h.Path, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("http check request for %s: %w", u, err)
	}
	if h.Host != "" {
		req.Host = h.Host
	}
	req.Header.Set("User-Agent", "tierlb-health")
	client := h.client
	if client == nil { // a literal HTTPChecker{} still works
		client = NewHTTPChecker(h.Path, h.Host, h.Status).client
	}
	resp, err := client.Do(req)
	if err != nil {
		return err // *url.Error: "Get "http://addr/path": ..."
	}
	// Closing without draining is fine: the connection is not reused.
	resp.Body.Close()
	if !h.Status.Contains(resp.StatusCode) {
		return fmt.Errorf("GET %s: status %d, want %s", u, resp.StatusCode, h.Status)
	}
	return nil
}
