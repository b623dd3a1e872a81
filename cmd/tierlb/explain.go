package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/tierlb/tierlb/admin"
)

// explainCmd implements `tierlb explain`: every container discovery has
// seen, routed or not, and why.
func explainCmd(args []string, stdout, stderr io.Writer) int {
	return newAdminCLI(stdout, stderr).explain(args)
}

func (c *adminCLI) explain(args []string) int {
	base, asJSON, code, done := c.parseAdminFlags("explain", "tierlb explain [--admin URL] [--json]",
		"Print every container discovery has seen: its service, the network and address chosen, or why it is not routed.", args)
	if done {
		return code
	}
	body, ok := c.fetch(base, "/api/v1/explain")
	if !ok {
		return exitRuntime
	}
	if asJSON {
		c.stdout.Write(body)
		return exitOK
	}
	var list []admin.Explanation
	if err := json.Unmarshal(body, &list); err != nil {
		fmt.Fprintf(c.stderr, "tierlb explain: the admin API at %s sent an explain list that does not decode: %v\n", base, err)
		return exitRuntime
	}
	c.printExplain(list)
	return exitOK
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
			dash(e.Name), dash(id), node(e), dash(e.Service), c.paint(yes, yes), dash(e.Network), dash(e.Address), dash(reason))
	}
	tw.Flush()
	fmt.Fprintf(c.stdout, "\n%d of %d containers routed\n", routed, len(list))
}

// dash shows an empty cell as "-" so columns stay readable.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
