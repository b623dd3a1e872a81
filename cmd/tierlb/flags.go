package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/tierlb/tierlb/config"
)

// configFlags are the flags run and check share: the config file, flags
// bound to top-level keys, and the quick-mode service.
type configFlags struct {
	fs       *pflag.FlagSet
	synopsis string
	file     string
	bound    map[string]string // config key → flag name
	listen   string
	back     []string
	name     string
	bal      string
	health   string
	pp       string
}

// newConfigFlags defines the shared flags on a new flag set for command.
func newConfigFlags(command, synopsis string) *configFlags {
	f := &configFlags{
		fs:       pflag.NewFlagSet("tierlb "+command, pflag.ContinueOnError),
		synopsis: synopsis,
		bound:    map[string]string{},
	}
	fs := f.fs
	fs.SortFlags = false
	fs.Usage = func() {} // printed by parse, on stdout for -h
	fs.StringVarP(&f.file, "config", "c", "", "config file (.yaml, .yml, .toml or .json); env TIERLB_CONFIG")

	// Flags bound to config keys override TIERLB_* variables and the file,
	// but only when given: an unset flag's default never shadows them.
	bind := func(key, name string) { f.bound[key] = name }
	fs.String("admin-listen", "", `admin API address, "" disables (admin.listen)`)
	bind("admin.listen", "admin-listen")
	fs.String("log-level", "", "debug, info, warn or error (log.level)")
	bind("log.level", "log-level")
	fs.String("log-format", "", "text or json (log.format)")
	bind("log.format", "log-format")
	fs.Bool("access-log", true, "log one line per finished connection (log.access)")
	bind("log.access", "access-log")
	fs.Duration("drain-timeout", 0, "how long open connections may finish on SIGTERM (shutdown.drain_timeout)")
	bind("shutdown.drain_timeout", "drain-timeout")
	fs.String("docker", "", "Docker discovery: auto, true or false (docker.enabled)")
	bind("docker.enabled", "docker")
	fs.Duration("watch-config", 0, "reload when the config file changes, polling this often; 0 = SIGHUP only (config_watch)")
	bind("config_watch", "watch-config")
	fs.Int("loops", 0, "event loops of the whole process, shared by every service; 0 = one per core; read at start (engine.loops)")
	bind("engine.loops", "loops")
	fs.String("handover-socket", "", "unix socket to take the listening sockets from a running tierlb, and to hand them to the next (handover.socket)")
	bind("handover.socket", "handover-socket")

	fs.StringVar(&f.listen, "listen", "", "quick mode: listen address of the one service (host:port)")
	fs.StringSliceVar(&f.back, "backend", nil, "quick mode: backend addresses, comma-separated or repeated")
	fs.StringVar(&f.name, "name", "quick", "quick mode: service name")
	fs.StringVar(&f.bal, "balance", "", "quick mode: roundrobin, leastconn, random2 or sourcehash")
	fs.StringVar(&f.health, "health", "", "quick mode: health check type (tcp, http, send-expect, none)")
	fs.StringVar(&f.pp, "proxy-protocol", "", "quick mode: PROXY header to send to backends (v1 or v2)")
	return f
}

// errHelp reports that -h was given and usage has been printed.
var errHelp = errors.New("help requested")

// parse parses args; on -h it prints usage to stdout and returns errHelp.
func (f *configFlags) parse(args []string, stdout io.Writer) error {
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			printUsage(stdout, f.synopsis, f.fs)
			return errHelp
		}
		return err
	}
	if f.fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", f.fs.Arg(0))
	}
	if !f.quick() {
		for _, name := range []string{"name", "balance", "health", "proxy-protocol"} {
			if f.fs.Changed(name) {
				return fmt.Errorf("--%s applies to quick mode only (with --listen and --backend)", name)
			}
		}
	}
	return nil
}

// source resolves where the config comes from. The file is --config, else
// TIERLB_CONFIG.
func (f *configFlags) source() config.Source {
	src := config.Source{File: f.file, Flags: map[string]*pflag.Flag{}}
	if !f.fs.Changed("config") {
		src.File = os.Getenv("TIERLB_CONFIG")
	}
	for key, name := range f.bound {
		if fl := f.fs.Lookup(name); fl.Changed {
			src.Flags[key] = fl
		}
	}
	if f.quick() {
		svc := map[string]any{"name": f.name, "listen": f.listen}
		static := make([]any, len(f.back))
		for i, b := range f.back {
			static[i] = strings.TrimSpace(b)
		}
		svc["backends"] = map[string]any{"static": static}
		if f.bal != "" {
			svc["balance"] = f.bal
		}
		if f.health != "" {
			svc["health"] = map[string]any{"type": f.health}
		}
		if f.pp != "" {
			svc["proxy_protocol"] = f.pp
		}
		src.Quick = svc
	}
	return src
}

// quick reports whether quick-mode flags define the service.
func (f *configFlags) quick() bool { return f.fs.Changed("listen") || f.fs.Changed("backend") }

func printUsage(w io.Writer, synopsis string, fs *pflag.FlagSet) {
	fmt.Fprintf(w, "Usage: %s\n\nFlags:\n%s", synopsis, fs.FlagUsages())
}
