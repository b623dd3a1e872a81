package main

import (
	"io"
	"log/slog"
)

// newLogger builds the process logger on w (stderr) from log.level and
// log.format. The level is a LevelVar so that a reload can change it; the
// format cannot change without a restart.
func newLogger(w io.Writer, cfg LogConfig) (*slog.Logger, *slog.LevelVar) {
	level := new(slog.LevelVar)
	level.Set(logLevel(cfg.Level))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if cfg.Format == "json" {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(h), level
}
