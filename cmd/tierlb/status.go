package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/tierlb/tierlb/admin"
)

// defaultAdminURL is where status and explain look without --admin or
// TIERLB_ADMIN_LISTEN: the default admin.listen.
const defaultAdminURL = "http://127.0.0.1:9090"

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

// statusCmd implements `tierlb status`: the services and their backends.
func statusCmd(args []string, stdout, stderr io.Writer) int {
	return newAdminCLI(stdout, stderr).status(args)
}

func (c *adminCLI) status(args []string) int {
	base, asJSON, code, done := c.parseAdminFlags("status", "tierlb status [--admin URL] [--json]",
		"Print every service and backend: state and why, weights, connections, bytes, last check.", args)
	if done {
		return code
	}
	body, ok := c.fetch(base, "/api/v1/services")
	if !ok {
		return exitRuntime
	}
	if asJSON {
		c.stdout.Write(body)
		return exitOK
	}
	var services []admin.ServiceStatus
	if err := json.Unmarshal(body, &services); err != nil {
		fmt.Fprintf(c.stderr, "tierlb status: the admin API at %s sent a services list that does not decode: %v\n", base, err)
		return exitRuntime
	}
	c.printStatus(services)
	return exitOK
}

// printStatus writes two tables: one line per service, then one per backend.
func (c *adminCLI) printStatus(services []admin.ServiceStatus) {
	if len(services) == 0 {
		fmt.Fprintln(c.stdout, "no services")
		return
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tLISTEN\tBALANCE\tBACKENDS\tUP")
	total := 0
	for _, s := range services {
		up := 0
		for _, b := range s.Backends {
			if b.State == "up" {
				up++
			}
		}
		total += len(s.Backends)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\n", s.Name, dash(s.Listen), dash(s.Balance), len(s.Backends), up)
	}
	tw.Flush()
	fmt.Fprintln(c.stdout)
	if total == 0 {
		fmt.Fprintln(c.stdout, "no backends")
		return
	}
	// Swarm tasks add a NODE column; without them the table is unchanged.
	swarmTasks := false
	for _, s := range services {
		for _, b := range s.Backends {
			swarmTasks = swarmTasks || b.Node != ""
		}
	}
	node := func(b admin.BackendStatus) string {
		if !swarmTasks {
			return ""
		}
		return dash(b.Node) + "\t"
	}
	nodeHeader := ""
	if swarmTasks {
		nodeHeader = "NODE\t"
	}
	fmt.Fprintf(tw, "SERVICE\tBACKEND\t%sADDRESS\t%s\tWEIGHT\tPRIO\tACTIVE\tTOTAL\tTO BACKEND\tTO CLIENT\tERRORS\tLAST CHECK\tREASON\n",
		nodeHeader, c.paint("", "STATE"))
	for _, s := range services {
		for _, b := range s.Backends {
			var errs uint64
			for _, n := range b.ConnectErrors {
				errs += n
			}
			check := "-"
			if lc := b.LastCheck; lc != nil {
				check = lc.Result + " " + admin.FormatAge(c.now().Sub(lc.At))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%d\t%s\t%s\n",
				s.Name, b.ID, node(b), dash(b.Address), c.paint(b.State, b.State), b.Weight, b.Priority,
				b.ActiveConnections, b.TotalConnections, admin.FormatBytes(b.BytesToBackend), admin.FormatBytes(b.BytesToClient),
				errs, check, b.Reason)
		}
	}
	tw.Flush()
}

// parseAdminFlags parses --admin and --json. done reports that the command
// should return code now (help, or a usage error).
func (c *adminCLI) parseAdminFlags(name, synopsis, about string, args []string) (base string, asJSON bool, code int, done bool) {
	fs := pflag.NewFlagSet("tierlb "+name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	raw := fs.String("admin", "", "admin API URL or host:port; env TIERLB_ADMIN_LISTEN, default "+defaultAdminURL)
	fs.BoolVar(&asJSON, "json", false, "print the admin API's JSON as is")
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

// resolveAdminURL turns --admin (a URL, or an admin.listen value such as
// "0.0.0.0:9090") into the base URL to query. A wildcard listen address is
// reached on loopback.
func resolveAdminURL(s string) (string, error) {
	raw := s
	if !strings.Contains(s, "://") {
		raw = "http://" + s
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("invalid admin URL %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("invalid admin URL %q: scheme must be http or https", s)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("invalid admin URL %q: want http://HOST:PORT[/PATH]", s)
	}
	host, port := u.Hostname(), u.Port()
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	if port != "" {
		u.Host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		u.Host = "[" + host + "]"
	} else {
		u.Host = host
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u.String(), nil
}

// fetch GETs path from the admin API. On failure it prints why and returns
// false.
func (c *adminCLI) fetch(base, path string) ([]byte, bool) {
	resp, err := c.client.Get(base + path)
	if err != nil {
		fmt.Fprintf(c.stderr, "cannot reach the admin API at %s: %v; is tierlb running with admin.listen set?\n",
			base, unwrapURLError(err))
		return nil, false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		fmt.Fprintf(c.stderr, "read %s%s: %v\n", base, path, err)
		return nil, false
	}
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(body))
		var apiErr struct{ Error string }
		if json.Unmarshal(body, &apiErr) == nil && apiErr.Error != "" {
			msg = apiErr.Error
		}
		fmt.Fprintf(c.stderr, "the admin API at %s answered %s for %s: %s\n", base, resp.Status, path, msg)
		return nil, false
	}
	return body, true
}

// unwrapURLError drops net/http's `Get "URL":` prefix, which repeats the URL
// the message already names.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
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

// stateColors are ANSI colours by state (and routed yes/no). Every code has
// the same length, so a column of coloured cells stays aligned.
var stateColors = map[string]string{
	"up": "\x1b[32m", "yes": "\x1b[32m",
	"down": "\x1b[31m", "no": "\x1b[31m",
	"draining": "\x1b[33m", "maint": "\x1b[36m",
}

// paint colours text by key. tabwriter counts escape bytes as width, so when
// colour is on every cell of a painted column (the header included, with the
// no-op "default colour" code) carries escapes of the same length.
func (c *adminCLI) paint(key, text string) string {
	if !c.color {
		return text
	}
	code, ok := stateColors[key]
	if !ok {
		code = "\x1b[39m"
	}
	return code + text + "\x1b[0m"
}
