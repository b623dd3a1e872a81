// Package proxy is tierlb's data path: one listener per service, an accept
// loop that picks backends from the service's current pool snapshot, and the
// byte movers that splice between the client and backend sockets.
//
//	svc, err := proxy.NewService(cfg, set, proxy.Options{Logger: log})
//	if err != nil { ... }
//	if err := svc.Listen(); err != nil { ... } // bind now, so bind errors surface early
//	go svc.Serve(ctx)                          // until ctx is done
//	...
//	svc.Shutdown(drainCtx)                     // close the listener, wait, then cut
//
// # Moving bytes
//
// Each direction of a connection is a copy loop on the bare *net.TCPConn
// sockets, driven through their syscall.RawConn so that every wait happens
// in Go's netpoller and no wrapper sits on the copy path. With zero_copy on,
// a wakeup first reads into a pooled 32 KiB buffer: small messages cost a
// read and a write. A read that fills the buffer means a burst, which is
// spliced through a pipe lent from a pool (HAProxy-style) and given back as
// soon as it is empty, so an idle connection holds its two sockets and
// nothing else, and the per-user pipe budget is spent only on transfers in
// flight. If no pipe can be had (EMFILE, ENFILE, a one-page pipe from an
// exhausted budget) the transfer goes through the buffer instead.
// zero_copy: off uses the buffer path only. Bytes are counted from the
// syscalls' return values.
//
// # Connection semantics
//
// A FIN is passed on with CloseWrite and the other direction gets
// timeouts.half_close to finish. An RST or error on one side closes the
// other with SO_LINGER 0, so it gets an RST too. Idleness is read from the
// kernel's TCP_INFO stamps by one timer per connection, so the copy loops
// record nothing per transfer. Connections are cut from outside (timeouts,
// drain, on_backend_down: close) by a past deadline that wakes their loops;
// the sockets are closed only after both loops returned.
//
// # Engines
//
// By default connections move with the epoll engine (engine*.go);
// TIERLB_ENGINE=goroutine selects the goroutine path above. The engine runs
// one event loop per P (Options.Loops, see ReserveProc), each on its own
// epoll instance, all sharing the listener (EPOLLEXCLUSIVE); the loop
// that accepts a connection hands it to the least loaded one.
// A loop sleeps in a blocking epoll_wait (TIERLB_EPOLL_WAIT=netpoll parks
// it in Go's netpoller instead; engine_wait.go has the measurements).
// Sockets are accepted, connected, read, written and spliced with raw
// non-blocking syscalls and registered once, edge-triggered with
// EPOLLRDHUP: a small message costs a recv and a send, a burst is spliced
// through a pipe lent while bytes are in flight, and an idle connection is
// its two sockets and a ~250-byte struct, with no goroutine and no
// net.Conn. Deadlines live in a per-loop heap; other goroutines
// (on_backend_down, drain, shutdown) reach a loop through a queue woken by
// an eventfd. A trusted client's PROXY header (accept_proxy_protocol) is
// read in the loop, under a deadline in the same heap (engine_header.go).
package proxy
