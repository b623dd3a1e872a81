package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/tierlb/tierlb/config"
	"github.com/tierlb/tierlb/proxy"
)

// cmdCheck validates the config. It prints the resolved config (defaults,
// file, environment and flags merged) as YAML on stdout, after a comment
// line with what the namespace's local ports allow, and with
// handover.socket what a start would inherit; it exits 0. Or it prints
// every problem on stderr and exits 1.
func cmdCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	l, code, done := configFromArgs("check", "tierlb check [--config FILE] [flags]", args, stdout, stderr)
	if done {
		return code
	}
	src, cfg := l.src, l.cfg
	out, err := resolvedYAML(cfg, planProcs(cfg.Engine.Loops, hostProcs()))
	if err != nil {
		fmt.Fprintf(stderr, "tierlb: print config: %v\n", err)
		return exitRuntime
	}
	from := "defaults, environment and flags"
	if src.File != "" {
		from = src.File + ", " + from
	}
	fmt.Fprintf(stdout, "# resolved config from %s\n", from)
	fmt.Fprintf(stdout, "# local ports of this network namespace: %s\n", localPortsLine(hostEnvironment()))
	_, _ = stdout.Write(out)
	printHandover(ctx, stdout, cfg)
	return exitOK
}

// configFromArgs parses a config command's flags and loads the config they
// point at. done means the command is over (help, a usage or config error)
// with exit code code; the errors are printed.
func configFromArgs(command, synopsis string, args []string, stdout, stderr io.Writer) (l loaded, code int, done bool) {
	f := newConfigFlags(command, synopsis)
	if code, done := parseFlags(f, args, stdout, stderr); done {
		return l, code, true
	}
	l, err := load(f.source())
	if err != nil {
		printConfigErrors(stderr, err)
		return l, exitConfig, true
	}
	return l, 0, false
}

// parseFlags parses a command's flags; done is true when the command must
// return code at once (-h, or a usage error).
func parseFlags(f *configFlags, args []string, stdout, stderr io.Writer) (code int, done bool) {
	err := f.parse(args, stdout)
	switch {
	case err == nil:
		return 0, false
	case errors.Is(err, errHelp):
		return exitOK, true
	}
	fmt.Fprintf(stderr, "tierlb: %v\n", err)
	printUsage(stderr, f.synopsis, f.fs)
	return exitConfig, true
}

// resolvedYAML is the config as check prints it, with what engine.loops
// and engine.io_uring come to on this machine beside them.
func resolvedYAML(cfg *config.Config, plan procPlan) ([]byte, error) {
	return cfg.YAML(map[string]string{"engine.loops": plan.note(),
		"engine.io_uring": "io_uring " + ioUringState(cfg.Engine.IOUring, proxy.IOUringProbe)})
}

// printConfigErrors writes every problem of a config, one per line.
func printConfigErrors(w io.Writer, err error) {
	errs := config.Problems(err)
	noun := "problems"
	if len(errs) == 1 {
		noun = "problem"
	}
	fmt.Fprintf(w, "tierlb: invalid config (%d %s):\n", len(errs), noun)
	for _, e := range errs {
		fmt.Fprintf(w, "  %v\n", e)
	}
}
