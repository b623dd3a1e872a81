package health

import "context"

// HTTPChecker passes when GET Path answers with a status in Status. Only the
// status line is read; redirects are not followed (a 3xx is a status like
// any other), no proxy from the environment is used, and every probe is a
// fresh connection (Connection: close), like a new client's.
type HTTPChecker struct {
	Path   string       // request path and query, starting with "/"
	Host   string       // Host header; "" sends the address
	Status StatusRanges // accepted statuses
}

// NewHTTPChecker returns a checker for path, host and status.
func NewHTTPChecker(path, host string, status StatusRanges) *HTTPChecker {
	return &HTTPChecker{Path: path, Host: host, Status: status}
}

// Check sends one GET to addr.
func (h *HTTPChecker) Check(ctx context.Context, addr string) error {
	return checkWire(ctx, addr, h)
}
