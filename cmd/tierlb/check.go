package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"
)

// cmdCheck validates the config. It prints the resolved config (defaults,
// file, environment and flags merged) as YAML on stdout and exits 0, or
// prints every problem on stderr and exits 1.
func cmdCheck(_ context.Context, args []string, stdout, stderr io.Writer) int {
	src, cfg, code, done := configFromArgs("check", "tierlb check [--config FILE] [flags]", args, stdout, stderr)
	if done {
		return code
	}
	out, err := marshalConfig(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "tierlb: print config: %v\n", err)
		return exitRuntime
	}
	from := "defaults, environment and flags"
	if src.File != "" {
		from = src.File + ", " + from
	}
	fmt.Fprintf(stdout, "# resolved config from %s\n", from)
	_, _ = stdout.Write(out)
	return exitOK
}

// configFromArgs parses a config command's flags and loads the config they
// point at. done means the command is over (help, a usage or config error)
// with exit code code; the errors are printed.
func configFromArgs(command, synopsis string, args []string, stdout, stderr io.Writer) (src source, cfg *Config, code int, done bool) {
	f := newConfigFlags(command, synopsis)
	if code, done := parseFlags(f, args, stdout, stderr); done {
		return src, nil, code, true
	}
	src = f.source()
	cfg, err := loadConfig(src)
	if err != nil {
		printConfigErrors(stderr, err)
		return src, nil, exitConfig, true
	}
	return src, cfg, 0, false
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

// redacted stands in for a secret in printed configs.
const redacted = "<redacted>"

// marshalConfig renders cfg as YAML with two-space indents, the way SPEC.md
// writes it; durations come out as "30s". The admin token is a secret (a
// check's output ends up in CI logs and bug reports): when set, it is
// printed as <redacted>.
func marshalConfig(cfg *Config) ([]byte, error) {
	var doc yaml.Node
	if err := doc.Encode(cfg); err != nil {
		return nil, err
	}
	if tok := mappingValue(mappingValue(&doc, "admin"), "token"); tok != nil && tok.Value != "" {
		tok.Value, tok.Style = redacted, 0
		tok.LineComment = "set, not printed"
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// printConfigErrors writes every problem of a config, one per line.
func printConfigErrors(w io.Writer, err error) {
	errs := flatten(err)
	noun := "problems"
	if len(errs) == 1 {
		noun = "problem"
	}
	fmt.Fprintf(w, "tierlb: invalid config (%d %s):\n", len(errs), noun)
	for _, e := range errs {
		fmt.Fprintf(w, "  %v\n", e)
	}
}

// flatten unpacks errors.Join trees into their leaves.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// mappingValue returns the value node of key in a YAML mapping node, or nil.
func mappingValue(n *yaml.Node, key string) *yaml.Node {
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}
