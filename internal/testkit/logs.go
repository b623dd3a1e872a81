package testkit

import (
	"context"
	"log/slog"
	"strings"
	"sync"
)

// Messages is a slog.Handler that keeps the messages logged, for tests
// that count what a component said.
type Messages struct {
	mu   sync.Mutex
	msgs []string
}

func (m *Messages) Enabled(context.Context, slog.Level) bool { return true }
func (m *Messages) WithAttrs([]slog.Attr) slog.Handler       { return m }
func (m *Messages) WithGroup(string) slog.Handler            { return m }

func (m *Messages) Handle(_ context.Context, r slog.Record) error {
	m.mu.Lock()
	m.msgs = append(m.msgs, r.Message)
	m.mu.Unlock()
	return nil
}

// Count is how many messages begin with prefix.
func (m *Messages) Count(prefix string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, s := range m.msgs {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}
