// Package proxy is tierlb's data path: for each service a listener, event
// loops that accept on it, pick backends from the service's pool snapshot,
// and move bytes between client and backend sockets. It needs Linux
// (epoll, splice, TCP_INFO).
//
//	svc, err := proxy.NewService(cfg, set, proxy.Options{Logger: log})
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
//     the Service lifecycle: Listen, Serve, Reconfigure, Shutdown.
//   - engine.go: a service's set of loops sharing one listener.
//   - loop.go: one event loop; request.go: how other goroutines reach it;
//     freelist.go: what it recycles so the hot path allocates nothing.
//   - accept.go: accepting with backoff, placing a connection on the
//     least loaded loop; admit.go: max_conns and allow, before any byte.
//   - header.go: a trusted client's PROXY header (accept_proxy_protocol).
//   - dial.go: the failover order, non-blocking connects, name lookups,
//     the PROXY header sent to the backend.
//   - conn.go: the connection and its two directions; pump.go: moving
//     bytes; pipe.go: the pipes bursts are spliced through.
//   - timer.go: connect, header, idle and half-close deadlines.
//   - end.go: how a connection ends: reasons, closing, counters, the
//     access log line.
//   - sys.go, sockopt.go: raw syscalls and socket options; metrics.go.
//
// # The engine
//
// Each service runs Options.Loops event loops (default one per P), each a
// goroutine on its own epoll instance, all sharing the listener
// (EPOLLEXCLUSIVE); the loop that accepts a connection hands it to the
// least loaded one. A loop sleeps in a blocking epoll_wait, so the kernel
// wakes its thread directly, as HAProxy's threads are woken. Go's
// scheduler sees a thread in a system call: unless a P is idle, its
// monitor takes the P away after 20µs and the next wakeup must find one
// again. So the caller (cmd/tierlb) runs GOMAXPROCS one above the loop
// count. Parking the loops in Go's netpoller instead measured the same CPU
// per request and per connection, with a longer wait for a P on wakeup.
//
// Sockets are accepted, connected, read, written and spliced with raw
// non-blocking syscalls and registered once, edge-triggered with
// EPOLLRDHUP. A small message costs a recv and a send through the loop's
// buffer; a read that fills the buffer means a burst, which is spliced
// through a pipe lent while bytes are in flight (zero_copy: off never
// splices). An idle connection is its two sockets and a ~250-byte struct,
// with no goroutine and no net.Conn. Bytes are counted from the syscalls'
// return values.
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
package proxy
