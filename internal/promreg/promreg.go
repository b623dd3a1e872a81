// Package promreg registers a package's Prometheus collector the way every
// tierlb package needs it: a reload builds its pieces again, and their
// second registration on the same registry must hand back the collector
// already there, whose counts go on, rather than fail.
package promreg

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c on reg and returns it, or, when reg already has a
// collector of c's type for the same series, that one. what names the
// metrics in the error of any other failure.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C, what string) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("register %s: %w", what, err)
}
