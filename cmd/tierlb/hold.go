package main

import (
	"context"
	"fmt"
	"io"
)

// cmdHold does nothing until SIGTERM or SIGINT. It is the holder container
// of the hand-over pattern: the container that owns the network namespace
// (its networks and published ports) which the tierlb containers join with
// network_mode "service:holder", so that an old and a new tierlb can run
// side by side and hand the listening sockets over. The image has nothing
// else to sleep with (it is FROM scratch, and nothing can be pulled).
func cmdHold(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprintln(stdout, "Usage: tierlb hold\n\nWaits for SIGTERM or SIGINT, then exits 0: the holder of the network namespace\n(networks, published ports) that tierlb containers join to hand over their sockets.")
		return exitOK
	}
	if len(args) > 0 {
		fmt.Fprintf(stderr, "tierlb: hold takes no arguments\n")
		return exitConfig
	}
	// main handles the signals before any command runs, so once this line
	// is out a SIGTERM ends the hold cleanly.
	fmt.Fprintln(stderr, "tierlb hold: holding the network namespace until SIGTERM or SIGINT")
	<-ctx.Done()
	return exitOK
}
