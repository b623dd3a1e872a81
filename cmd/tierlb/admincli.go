package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
)

// adminCLI is what the status and explain commands depend on besides their
// arguments; tests pin the clock and the colour choice.
type adminCLI struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	now            func() time.Time
	color          bool
	client         *http.Client
}

func newAdminCLI(stdout, stderr io.Writer) *adminCLI {
	return &adminCLI{
		stdout: stdout, stderr: stderr, getenv: os.Getenv, now: time.Now,
		color:  useColor(stdout, os.Getenv),
		client: &http.Client{Timeout: 5 * time.Second},
	}
}

// tableCommand is a command that reads one list from the admin API and
// prints it as a table, or with --json as the API sent it.
type tableCommand[T any] struct {
	name, synopsis, about string
	path                  string // of the admin API
	what                  string // the list, for an error: "a services list"
	// flags, when set, adds the command's own flags; the function it
	// returns, called after parsing, gives the API query they ask for (or
	// a usage error) and the filter to apply to the answer as well, so
	// an older tierlb that ignores the query still prints what was asked.
	flags func(fs *pflag.FlagSet) func() (url.Values, func([]T) []T, error)
	print func(c *adminCLI, list []T)
}

// runTable is the whole of a table command: flags, fetch, then the table
// or the JSON.
func runTable[T any](c *adminCLI, cmd tableCommand[T], args []string) int {
	var finish func() (url.Values, func([]T) []T, error)
	var extra func(fs *pflag.FlagSet)
	if cmd.flags != nil {
		extra = func(fs *pflag.FlagSet) { finish = cmd.flags(fs) }
	}
	base, asJSON, code, done := c.parseAdminFlags(cmd.name, cmd.synopsis, cmd.about, args, extra)
	if done {
		return code
	}
	path, keep := cmd.path, func(l []T) []T { return l }
	if finish != nil {
		q, k, err := finish()
		if err != nil {
			fmt.Fprintf(c.stderr, "tierlb %s: %v\n", cmd.name, err)
			return exitConfig
		}
		if len(q) > 0 {
			path += "?" + q.Encode()
		}
		keep = k
	}
	body, err := adminClient{base: base, http: c.client}.get(path)
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return exitRuntime
	}
	if asJSON {
		c.stdout.Write(body)
		return exitOK
	}
	var list []T
	if err := json.Unmarshal(body, &list); err != nil {
		fmt.Fprintf(c.stderr, "tierlb %s: the admin API at %s sent %s that does not decode: %v\n", cmd.name, base, cmd.what, err)
		return exitRuntime
	}
	cmd.print(c, keep(list))
	return exitOK
}

// parseAdminFlags parses --admin, --json and what extra adds. done reports
// that the command should return code now (help, or a usage error).
func (c *adminCLI) parseAdminFlags(name, synopsis, about string, args []string, extra func(*pflag.FlagSet)) (base string, asJSON bool, code int, done bool) {
	fs := pflag.NewFlagSet("tierlb "+name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	raw := fs.String("admin", "", "admin API URL or host:port; env TIERLB_ADMIN_LISTEN, default "+defaultAdminURL)
	fs.BoolVar(&asJSON, "json", false, "print the admin API's JSON as is")
	if extra != nil {
		extra(fs)
	}
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: %s\n\n%s\n\nFlags:\n%s", synopsis, about, fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			usage(c.stdout)
			return "", false, exitOK, true
		}
		fmt.Fprintf(c.stderr, "tierlb %s: %v\n\n", name, err)
		usage(c.stderr)
		return "", false, exitConfig, true
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(c.stderr, "tierlb %s: unexpected argument %q\n\n", name, fs.Arg(0))
		usage(c.stderr)
		return "", false, exitConfig, true
	}
	from := *raw
	if from == "" {
		from = c.getenv("TIERLB_ADMIN_LISTEN")
	}
	if from == "" {
		from = defaultAdminURL
	}
	base, err := resolveAdminURL(from)
	if err != nil {
		fmt.Fprintf(c.stderr, "tierlb %s: %v\n", name, err)
		return "", false, exitConfig, true
	}
	return base, asJSON, 0, false
}

// useColor reports whether w is a terminal and colour is not turned off
// (NO_COLOR, TERM=dumb). A char device is not enough: /dev/null is one.
func useColor(w io.Writer, getenv func(string) string) bool {
	if getenv("NO_COLOR") != "" || getenv("TERM") == "dumb" {
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// stateColor is the ANSI colour of a state (and of routed yes/no). Every
// code has the same length, so a column of coloured cells stays aligned;
// anything else gets the no-op "default colour" code.
func stateColor(key string) string {
	switch key {
	case "up", "yes":
		return "\x1b[32m"
	case "down", "no":
		return "\x1b[31m"
	case "draining":
		return "\x1b[33m"
	case "maint":
		return "\x1b[36m"
	}
	return "\x1b[39m"
}

// paint colours text by key. tabwriter counts escape bytes as width, so when
// colour is on every cell of a painted column (the header included, with
// the default colour) carries escapes of the same length.
func (c *adminCLI) paint(key, text string) string {
	if !c.color {
		return text
	}
	return stateColor(key) + text + "\x1b[0m"
}

// dash shows an empty cell as "-" so columns stay readable.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
