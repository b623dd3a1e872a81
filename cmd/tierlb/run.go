package main

import (
	"context"
	"io"
)

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newConfigFlags("run", "tierlb [run] [--config FILE] [flags]")
	if code, done := parseFlags(f, args, stdout, stderr); done {
		return code
	}
	if _, err := loadConfig(f.source()); err != nil {
		printConfigErrors(stderr, err)
		return exitConfig
	}
	return exitOK
}
