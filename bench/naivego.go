package main

import (
	"context"
	"fmt"
	"syscall"
)

// startNaive runs bench/naive, the reference column: Go's standard
// library splice through two io.Copy goroutines per connection.
func startNaive(_ context.Context, e *env, _ string, p frontPorts, cred *syscall.Credential) ([]*proc, error) {
	if p.Kind != frontTCP {
		return nil, fmt.Errorf("naive: only plain TCP: %w", errSkipped)
	}
	argv := []string{e.naiveBin,
		"--listen", fmt.Sprintf("127.0.0.1:%d=%s", p.HTTP, e.whoamiAddr),
		"--listen", fmt.Sprintf("127.0.0.1:%d=127.0.0.1:%d", p.Iperf, e.iperfPort)}
	pr, err := e.procs.start("naive", argv, nil, cred)
	if err != nil {
		return nil, err
	}
	return []*proc{pr}, nil
}
