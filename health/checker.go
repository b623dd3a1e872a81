package health

import (
	"context"
	"errors"
	"fmt"

	"github.com/tierlb/tierlb/backends"
)

// Checker probes one backend address once. It returns nil when the backend
// passes; the error's text is the reason logged and shown on status pages.
// Implementations honour ctx, which carries the probe timeout, and are safe
// for concurrent use (one call per backend at a time, many backends at once).
type Checker interface {
	Check(ctx context.Context, addr string) error
}

// BackendChecker is implemented by checkers that need more than the address
// to probe, such as the docker checker (the container ID). The monitor
// prefers it over Check when a checker has both.
type BackendChecker interface {
	CheckBackend(ctx context.Context, spec backends.Spec) error
}

// checkSpec runs c against one backend the way the monitor does.
func checkSpec(ctx context.Context, c Checker, spec backends.Spec) error {
	if bc, ok := c.(BackendChecker); ok {
		return bc.CheckBackend(ctx, spec)
	}
	return c.Check(ctx, spec.Address)
}

// NewChecker builds the checker for cfg.Type (cfg's zero fields take their
// defaults). docker is required only for type docker.
func NewChecker(cfg Config, docker ContainerHealth) (Checker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	switch cfg.Type {
	case TypeTCP:
		return TCPChecker{}, nil
	case TypeHTTP:
		status, err := ParseStatusRanges(cfg.HTTPExpectStatus)
		if err != nil {
			return nil, fmt.Errorf("health.http.expect_status: %w", err)
		}
		return NewHTTPChecker(cfg.HTTPPath, cfg.HTTPHost, status), nil
	case TypeSendExpect:
		c, err := NewSendExpectChecker(cfg.Send, cfg.Expect)
		if err != nil {
			return nil, err
		}
		c.Network = cfg.Network
		return c, nil
	case TypeDocker:
		if docker == nil {
			return nil, errors.New("health.type: docker checks need a Docker connection (docker.enabled)")
		}
		return DockerChecker{Health: docker}, nil
	case TypeNone:
		return NoneChecker{}, nil
	}
	return nil, fmt.Errorf("health.type: unknown type %q", cfg.Type)
}

// TCPChecker passes when a TCP connection to the address opens.
type TCPChecker struct{}

// Check connects to addr and resets the connection at once.
func (TCPChecker) Check(ctx context.Context, addr string) error {
	return checkWire(ctx, addr, nil) // "dial tcp ADDR: connect: connection refused"
}

// NoneChecker always passes: health type none. The monitor does not even
// run it; it exists so that NewChecker covers every type.
type NoneChecker struct{}

// Check returns nil.
func (NoneChecker) Check(context.Context, string) error { return nil }
