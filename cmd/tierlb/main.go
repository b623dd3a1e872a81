// Command tierlb is a userspace L4 (TCP) load balancer for Docker.
//
//	tierlb [run] [--config FILE] [flags]     serve (the default command)
//	tierlb run --listen ADDR --backend A,B   quick mode: one service, no file
//	tierlb check [--config FILE]             validate and print the resolved config
//	tierlb status|explain [--admin URL]      read the admin API
//	tierlb hold                              sleep until SIGTERM (holder container)
//	tierlb version
//
// Exit codes: 0 clean shutdown, 1 bad config or usage, 2 runtime failure.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Exit codes, as SPEC.md defines them.
const (
	exitOK      = 0
	exitConfig  = 1 // bad config or usage
	exitRuntime = 2 // e.g. cannot bind
)

func main() {
	// SIGTERM/SIGINT start the drain. stop() restores the default action as
	// soon as the first one arrives, so a second signal kills a stuck drain.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-ctx.Done()
		stop()
	}()
	os.Exit(runMain(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// command is one subcommand: args are those after the command name.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"run", "serve the configured services (the default command)", cmdRun},
		{"check", "validate the config; print it resolved, or every error (exit 1)", cmdCheck},
		{"status", "table of services and backends from the admin API", withoutContext(statusCmd)},
		{"explain", "every container discovery saw, routed or not, and why", withoutContext(explainCmd)},
		{"hold", "sleep until SIGTERM: the network namespace's holder container", cmdHold},
		{"version", "print the version, commit and Go version", cmdVersion},
	}
}

// withoutContext adapts a command that needs no cancellation (a single
// admin API request).
func withoutContext(run func(args []string, stdout, stderr io.Writer) int) func(context.Context, []string, io.Writer, io.Writer) int {
	return func(_ context.Context, args []string, stdout, stderr io.Writer) int { return run(args, stdout, stderr) }
}

// runMain dispatches to a subcommand and returns the exit code. With no
// command, or when the first argument is a flag, it runs `run`.
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	name := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	} else if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		usage(stdout)
		return exitOK
	}
	if name == "help" {
		usage(stdout)
		return exitOK
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(ctx, args, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "tierlb: unknown command %q\n\n", name)
	usage(stderr)
	return exitConfig
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "tierlb is a userspace L4 (TCP) load balancer for Docker.")
	fmt.Fprintln(w, "\nUsage:\n  tierlb [command] [flags]")
	fmt.Fprintln(w, "\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'tierlb COMMAND -h' for a command's flags.")
}
