package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/tierlb/tierlb/config"
)

// newLogger builds the process logger on w (stderr) from log.level and
// log.format. The level is a LevelVar so that a reload can change it; the
// format cannot change without a restart.
func newLogger(w io.Writer, cfg config.LogConfig) (*slog.Logger, *slog.LevelVar) {
	level := new(slog.LevelVar)
	level.Set(cfg.SlogLevel())
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if cfg.Format == "json" {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(h), level
}

// accessLogger is log with its level lifted to info, for the access log:
// log.access asks for one line per finished connection, and log.level,
// which governs the operational messages, must not silence them. The lines
// go through log's own handler, so they share its format and writer.
func accessLogger(log *slog.Logger) *slog.Logger {
	return slog.New(infoHandler{log.Handler()})
}

// infoHandler passes every record at info or above, whatever the wrapped
// handler's level. slog's handlers check the level only in Enabled.
type infoHandler struct{ slog.Handler }

func (h infoHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h infoHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return infoHandler{h.Handler.WithAttrs(as)}
}

func (h infoHandler) WithGroup(name string) slog.Handler {
	return infoHandler{h.Handler.WithGroup(name)}
}
