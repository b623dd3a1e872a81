// Package proxy is tierlb's data path: the process's event loops, and for
// each service a listener registered in them; the loops accept, pick
// backends from the service's pool snapshot, and move bytes between
// client and backend sockets. It needs Linux (epoll, splice, TCP_INFO).
//
//	loops, err := proxy.NewLoops(n, log)        // once per process
//	go loops.Run(ctx)                           // until ctx is done and every service shut down
//	svc, err := proxy.NewService(cfg, set, proxy.Options{Logger: log, Loops: loops})
//	if err != nil { ... }
//	if err := svc.Listen(); err != nil { ... } // bind now, so bind errors surface early
//	go svc.Serve(ctx)                          // until ctx is done
//	...
//	svc.Shutdown(drainCtx)                     // close the listener, wait, then cut
//
// # Reading order
//
// A connection's life, top-down, one file per step:
//
//   - config.go, service.go: what the caller gives (Config, Options) and
//     the Service lifecycle: Listen, Serve, Reconfigure, Shutdown;
//     handover.go: StopAccepting, Files, ListenFiles and ListenFile,
//     for a successor process that takes the listening sockets over.
//   - engine.go: the process's loops (Loops) and a service's listeners
//     registered in them.
//   - loop.go: the TCP state of one event loop (the loop itself is
//     package internal/evloop, shared with package udp); request.go: how
//     other goroutines reach it; freelist.go: what it recycles so the hot
//     path allocates nothing.
//   - accept.go: accepting with backoff; place.go: which loop serves a
//     new connection; admit.go: max_conns and allow, before any byte.
//   - header.go: a trusted client's PROXY header (accept_proxy_protocol).
//   - front.go, hello.go: a listen address shared by services with SNI
//     names: the ClientHello read in the loop, the hand-over to the
//     service its server name routes to (package sni parses and matches).
//   - dial.go: the failover order, non-blocking connects, name lookups,
//     the PROXY header sent to the backend.
//   - conn.go: the connection and its two directions; pump.go: moving
//     bytes; batch.go: a wakeup's small messages in two io_uring calls
//     (package uring); pipe.go: the pipes bursts are spliced through; counters.go:
//     the bytes passed on to the backend's counters while they move.
//   - timer.go: connect, header, idle and half-close deadlines.
//   - end.go: how a connection ends: reasons, closing, counters, the
//     access log line.
//   - sys.go, sockopt.go: raw syscalls and socket options; metrics.go.
//
// # The engine
//
// The process runs Loops: a fixed number of event loops (engine.loops,
// default one per P), each a goroutine on its own epoll instance, which
// serve every service, TCP or UDP, and every Front. A connection belongs
// to a loop first and to a service second: it keeps its service's
// settings, pool, metrics, drain and access log whichever loop holds it.
// Adding a service registers its listening socket in each loop; removing
// it unregisters the socket. Neither starts a goroutine or a thread, so
// the process's threads are the loops plus Go's own few, whatever the
// number of services.
//
// A listening socket is one socket registered in every loop with
// EPOLLEXCLUSIVE, so that one loop wakes per connection; the loop that
// accepts keeps the connection or hands it on, so that a few connections
// at a time gather on one loop and more spread evenly (place.go). The
// alternative, a SO_REUSEPORT group of one socket per loop, is not used:
// it costs a descriptor per port and loop (a 1,000-port range on 8 loops
// would hold 8,000), and the kernel gives each socket of a group its own
// accept queue, so closing one socket resets the connections queued on
// it. With one socket there is one queue: taking the socket out of the
// loops (StopAccepting) leaves waiting clients queued, to be accepted by
// whoever takes the socket over (Files, ListenFiles), and its hash does
// not pin a client to a loop that happens to be busy. UDP services use a
// SO_REUSEPORT group (package udp says why).
//
// A loop sleeps in a blocking epoll_wait, so the kernel wakes its thread
// directly, as HAProxy's threads are woken. Go's
// scheduler sees a thread in a system call: unless a P is idle, its
// monitor takes the P away after 20µs and the next wakeup must find one
// again. So the caller (cmd/tierlb) runs GOMAXPROCS one above the loop
// count. Parking the loops in Go's netpoller instead costs the same CPU
// per request and per new connection (0.99x both, measured), and a woken
// loop then waits for a P in Go's run queue; only a loop idle for about
// 100 ms parks there, so that sysmon does not take its P (package
// evloop).
//
// Sockets are accepted, connected, read, written and spliced with raw
// non-blocking syscalls and registered once, edge-triggered with
// EPOLLRDHUP. A small message costs a recv and a send through the loop's
// buffer, or, where io_uring is allowed (engine.io_uring), a share of the
// two io_uring_enter calls that read and then send every small message
// of a wakeup (batch.go); a read that fills the buffer means a burst, which is spliced
// through a pipe lent while bytes are in flight (zero_copy: off never
// splices). An idle connection is its two sockets and a ~250-byte struct,
// with no goroutine and no net.Conn. Bytes are counted from the syscalls'
// return values, and reach the backend's counters within flushEvery
// (counters.go).
//
// # Connection semantics
//
// A FIN is passed on with shutdown(SHUT_WR) and the other direction gets
// timeouts.half_close to finish. An RST or error on one side closes the
// other with SO_LINGER 0, so it gets an RST too. Deadlines live in a
// per-loop heap, one entry per connection; moving bytes only stamps the
// loop's clock on the connection, and the entry is pushed back lazily
// when it comes due. Connections are cut from outside (drain,
// on_backend_down: close) through the loop's request queue, woken by an
// eventfd.
//
// # Shared TLS ports
//
// A Front owns the listener of an address that services with SNI names
// share; those services have no listener of their own. The listener
// defers each accept until the client's first bytes, so a loop wakes once
// to accept a connection and read its ClientHello. A connection is
// the Front's until its ClientHello names a service, then that service's
// (settings, pool, metrics, drain) in the same loop. Process-wide loops
// are the same idea for every service: a service holds the loops
// (Loops.Acquire) from its first connection to its Shutdown, and the
// loops stop once the process's context is done and no service holds
// them.
package proxy
