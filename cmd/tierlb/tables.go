package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/tierlb/tierlb/admin"
)

// The two table commands: what each reads from the admin API, and how it
// lays the list out. runTable does the rest.

// statusCmd implements `tierlb status`: the services and their backends.
func statusCmd(args []string, stdout, stderr io.Writer) int {
	return newAdminCLI(stdout, stderr).status(args)
}

func (c *adminCLI) status(args []string) int {
	return runTable(c, tableCommand[admin.ServiceStatus]{
		name:     "status",
		synopsis: "tierlb status [--admin URL] [--json] [--service NAME] [--state STATE[,STATE]] [--backend TEXT]",
		about: "Print every service and backend: state and why, weights, connections, bytes, last check, and the rates\n" +
			"over the last 10 s (connections, bytes each way, errors: failed dials, and a service's refused connections).",
		path:  "/api/v1/services",
		what:  "a services list",
		flags: statusFlags,
		print: (*adminCLI).printStatus,
	}, args)
}

// explainCmd implements `tierlb explain`: every container discovery has
// seen, routed or not, and why.
func explainCmd(args []string, stdout, stderr io.Writer) int {
	return newAdminCLI(stdout, stderr).explain(args)
}

func (c *adminCLI) explain(args []string) int {
	return runTable(c, tableCommand[admin.Explanation]{
		name:     "explain",
		synopsis: "tierlb explain [--admin URL] [--json]",
		about:    "Print every container discovery has seen: its service, the network and address chosen, or why it is not routed.",
		path:     "/api/v1/explain",
		what:     "an explain list",
		print:    (*adminCLI).printExplain,
	}, args)
}

// printStatus writes two tables: one line per service, then one per backend.
func (c *adminCLI) printStatus(services []admin.ServiceStatus) {
	if len(services) == 0 {
		fmt.Fprintln(c.stdout, "no services")
		return
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	// The SNI column shows only where some service shares its address.
	withSNI := slices.ContainsFunc(services, func(s admin.ServiceStatus) bool { return len(s.SNI) > 0 })
	sniCol := func(s admin.ServiceStatus) string {
		if !withSNI {
			return ""
		}
		return dash(strings.Join(s.SNI, ",")) + "\t"
	}
	sniHeader := ""
	if withSNI {
		sniHeader = "SNI\t"
	}
	fmt.Fprintf(tw, "SERVICE\tLISTEN\t%sBALANCE\tBACKENDS\tUP\tDOWN\tDRAINING\tMAINT\tACTIVE\tCONN/S\tTO BACKEND/S\tTO CLIENT/S\tERR/S\n", sniHeader)
	listed, total := 0, 0
	for _, s := range services {
		listed += len(s.Backends)
		n := 0
		for _, v := range s.States {
			n += v
		}
		total += n
		listen := dash(s.Listen)
		if s.Protocol == "udp" {
			listen += "/udp" // Docker's notation for a UDP port
		}
		fmt.Fprintf(tw, "%s\t%s\t%s%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", s.Name, listen, sniCol(s), dash(s.Balance), n,
			s.States["up"], s.States["down"], s.States["draining"], s.States["maint"], s.ActiveConnections, rateCells(s.Rates))
	}
	tw.Flush()
	fmt.Fprintln(c.stdout)
	switch {
	case total == 0:
		fmt.Fprintln(c.stdout, "no backends")
		return
	case listed == 0:
		fmt.Fprintln(c.stdout, "no backend matches the filter")
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
	fmt.Fprintf(tw, "SERVICE\tBACKEND\t%sADDRESS\t%s\tWEIGHT\tPRIO\tACTIVE\tTOTAL\tTO BACKEND\tTO CLIENT\tERRORS\tCONN/S\tTO BACKEND/S\tTO CLIENT/S\tERR/S\tLAST CHECK\tREASON\n",
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
			fmt.Fprintf(tw, "%s\t%s\t%s%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%d\t%s\t%s\t%s\n",
				s.Name, b.ID, node(b), dash(b.Address), c.paint(b.State, b.State), b.Weight, b.Priority,
				b.ActiveConnections, b.TotalConnections, admin.FormatBytes(b.BytesToBackend), admin.FormatBytes(b.BytesToClient),
				errs, rateCells(b.Rates), check, b.Reason)
		}
	}
	tw.Flush()
}

// rateCells are the four rate columns, "-" each before tierlb has two
// samples (or from a tierlb without rates). The unit is in the header.
func rateCells(r *admin.Rates) string {
	if r == nil {
		return "-\t-\t-\t-"
	}
	perSecond := func(s string) string { return strings.TrimSuffix(s, "/s") }
	return perSecond(admin.FormatRate(r.ConnsPerS)) + "\t" + perSecond(admin.FormatByteRate(r.BytesPerS.ToBackend)) + "\t" +
		perSecond(admin.FormatByteRate(r.BytesPerS.ToClient)) + "\t" + perSecond(admin.FormatRate(r.ErrorsPerS))
}

// printExplain writes one line per container; the reason comes last since it
// is the longest and most useful column.
func (c *adminCLI) printExplain(list []admin.Explanation) {
	if len(list) == 0 {
		fmt.Fprintln(c.stdout, "no containers seen (Docker discovery is off, or no container is running)")
		return
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	// Swarm tasks add a NODE column; without them the table is unchanged.
	swarmTasks := false
	for _, e := range list {
		swarmTasks = swarmTasks || e.Node != ""
	}
	node := func(e admin.Explanation) string {
		if !swarmTasks {
			return ""
		}
		return dash(e.Node) + "\t"
	}
	nodeHeader := ""
	if swarmTasks {
		nodeHeader = "NODE\t"
	}
	fmt.Fprintf(tw, "CONTAINER\tID\t%sSERVICE\t%s\tNETWORK\tADDRESS\tREASON\n", nodeHeader, c.paint("", "ROUTED"))
	routed := 0
	for _, e := range list {
		yes := "no"
		if e.Routed {
			yes = "yes"
			routed++
		}
		id := e.Container
		if len(id) > 12 {
			id = id[:12] // Docker's short ID
		}
		reason := e.Reason
		if len(e.Warnings) > 0 {
			reason = strings.TrimPrefix(reason+"; warnings: "+strings.Join(e.Warnings, "; "), "; ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s%s\t%s\t%s\t%s\t%s\n",
			dash(e.Name), dash(id), node(e), dash(withSNI(e.Service, e.SNI)), c.paint(yes, yes), dash(e.Network), dash(e.Address), dash(reason))
	}
	tw.Flush()
	fmt.Fprintf(c.stdout, "\n%d of %d containers routed\n", routed, len(list))
}

// withSNI names a service with its server names, if it routes by any.
func withSNI(service string, names []string) string {
	if len(names) == 0 {
		return service
	}
	return service + " (sni " + strings.Join(names, ",") + ")"
}
