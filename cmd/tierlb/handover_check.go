package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/tierlb/tierlb/config"
	"github.com/tierlb/tierlb/handover"
	"github.com/tierlb/tierlb/internal/listenaddr"
)

// printHandover tells what a start with this config would take from the
// tierlb serving handover.socket, as comment lines after check's YAML. It
// asks the running tierlb for its sockets and hands them back at once
// (closing the connection before ready changes nothing there).
func printHandover(ctx context.Context, w io.Writer, cfg *config.Config) {
	path := cfg.Handover.Socket
	if path == "" {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ver, _ := buildVersion()
	inh, err := handover.Fetch(ctx, path, handover.Options{Version: ver})
	switch {
	case errors.Is(err, handover.ErrNoPredecessor):
		fmt.Fprintf(w, "# hand-over: no tierlb serves %s; a start binds every listener\n", path)
		return
	case err != nil:
		fmt.Fprintf(w, "# hand-over: %v\n# a start would fail here\n", err)
		return
	}
	descs := inh.Sockets()
	inh.Close()
	fmt.Fprintf(w, "# hand-over: the tierlb serving %s (pid %d, version %s) holds %d listening sockets; a start would:\n",
		path, inh.PID, inh.Version, len(descs))
	for _, line := range handoverPlan(cfg, descs) {
		fmt.Fprintf(w, "#   %s\n", line)
	}
}

// handoverPlan matches the config's listeners with the sockets a
// predecessor holds, as a start would: inherit, bind, or close.
func handoverPlan(cfg *config.Config, descs []handover.Desc) []string {
	used := make([]bool, len(descs))
	var out []string
	plan := func(what, protocol, listen string) {
		addrs, err := listenaddr.Expand(listen)
		if err != nil {
			return // validation has said so
		}
		inherited, bound := 0, 0
		for _, a := range addrs {
			ap, err := addrPort(a)
			if err != nil {
				continue
			}
			found := false
			for i, d := range descs {
				if !used[i] && d.Matches(protocol, ap) && (protocol == config.ProtocolUDP || !found) {
					used[i], found = true, true
					inherited++
				}
			}
			if !found {
				bound++
			}
		}
		switch {
		case inherited == 0:
			out = append(out, fmt.Sprintf("bind     %s %s for %s (nothing to inherit)", protocol, listen, what))
		case bound == 0:
			out = append(out, fmt.Sprintf("inherit  %s %s for %s (%d sockets)", protocol, listen, what, inherited))
		default:
			out = append(out, fmt.Sprintf("inherit  %s %s for %s (%d sockets), bind %d ports", protocol, listen, what, inherited, bound))
		}
	}
	if cfg.Admin.Listen != "" {
		plan("the admin API", config.ProtocolTCP, cfg.Admin.Listen)
	}
	shared := map[string]bool{}
	for _, s := range cfg.Services {
		if len(s.SNI) > 0 {
			if !shared[s.Listen] {
				shared[s.Listen] = true
				plan("the sni services there", config.ProtocolTCP, s.Listen)
			}
			continue
		}
		plan("service "+s.Name, s.Protocol, s.Listen)
	}
	var closed []string
	for i, d := range descs {
		if !used[i] {
			closed = append(closed, d.String())
		}
	}
	slices.Sort(closed)
	for _, c := range slices.Compact(closed) {
		out = append(out, fmt.Sprintf("close    %s (no service of this config listens there; label-declared services may, once discovery runs)", c))
	}
	return out
}
