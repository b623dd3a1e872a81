// Package handover passes tierlb's listening sockets from a running process
// to its successor over a unix socket (SCM_RIGHTS), so that an upgrade
// refuses no client and loses nothing in a listen queue: both processes
// hold the same kernel sockets, and the old one stops accepting only after
// the new one says it accepts.
//
// The old process serves the socket path; the new one fetches from it:
//
//	// old process, once its listeners are bound
//	srv, err := handover.Listen(path, listeners, handover.Options{Logger: log})
//	go srv.Run(ctx)
//	<-srv.HandedOver() // a successor accepts; we have stopped accepting: drain, exit 0
//
//	// new process, before binding anything
//	inh, err := handover.Fetch(ctx, path, handover.Options{})
//	if errors.Is(err, handover.ErrNoPredecessor) { ... bind as usual ... }
//	files := inh.Take("tcp", addr, 1) // per listen address; bind what is missing
//	... register the files in the loops, accept ...
//	srv, err := handover.Listen(path, ...) // bound aside, not yet reachable
//	err = inh.Ready(ctx)                    // the old one stops accepting
//	srv.Publish()                           // the path names this process now
//
// # Protocol
//
// One SOCK_SEQPACKET connection per hand-over; every message is one record
// with a fixed header (magic "TLBH", protocol version, type, descriptor
// count, body length) and a JSON body (message.go). The new process sends
// hello; the old one answers offer (how many sockets), then the sockets in
// batches of at most maxFDsPerMessage descriptors, each with its
// description; the new process checks every description against what the
// kernel says of the descriptor it received. When it accepts on them it
// sends ready; the old process stops accepting (its listen queues stay
// open: they are the same sockets) and answers ack. Any other order, an
// unknown version, a truncated record or descriptors without a description
// end the exchange with an error message and close every descriptor
// received. A successor that goes away before ready changes nothing: the
// old process never stopped accepting.
//
// One hand-over at a time: a second successor gets "busy" and retries
// until its context ends; after a hand-over the old process answers
// "handed over" until it exits, which makes the second one retry at the
// path, which by then names the first successor.
//
// # The path
//
// A process binds its own socket beside the path (path.<pid>.tmp), makes
// it 0600, and renames it over the path when it becomes the process that
// accepts: the path always names one live process or a stale file, and a
// stale file (connection refused) means there is no predecessor. Only a
// peer with the same uid (or root) may connect (SO_PEERCRED), so on a
// volume shared between containers both must run as the same user.
package handover
