// Package udp is tierlb's data path for UDP services. Datagrams from one
// client address form a session bound to one backend, chosen by the
// service's balancing policy when the session starts, with a socket
// connected to that backend, so that replies find their client.
//
//	svc, err := udp.NewService(cfg, set, udp.Options{Logger: log, Metrics: m})
//	if err != nil { ... }
//	if err := svc.Listen(); err != nil { ... } // bind now, so bind errors surface early
//	go svc.Serve(ctx)                          // new sessions until ctx is done
//	...
//	svc.Shutdown(drainCtx)                     // sessions run out, then are cut
//
// # Moving datagrams
//
// A service runs in the process's event loops (Options.Loops, made by
// proxy.NewLoops and shared with every TCP and UDP service): it binds one
// socket per loop, all in a SO_REUSEPORT group, and registers one in each
// loop. A session lives in the loop that received its first datagram, and
// the group's hash keeps sending a client's datagrams to the same socket,
// so to the same loop; one socket in every loop, as TCP listeners are
// shared, would scatter a client's datagrams over loops that each know
// only their own sessions. Each loop sleeps in epoll_wait on the
// listening sockets it holds, on its sessions' backend sockets and on an
// eventfd for requests. A wakeup receives up to a batch of datagrams with one recvmmsg
// per ready socket and sends them with one sendmmsg per session's run of
// datagrams; replies from every session are collected and leave with one
// sendmmsg on the listening socket. Buffers, message headers and session
// structs belong to the loop, shared by every UDP socket in it, and are
// reused, so moving a datagram allocates nothing. Buffers hold 64 KiB: no datagram is truncated.
//
// # Sessions
//
// A session ends after session_timeout without datagrams either way (the
// loop keeps its sessions in order of their latest datagram, so expiry
// costs no timer per session), or once the expected replies arrived
// (responses). A backend that answers with ICMP port unreachable shows up
// as ECONNREFUSED on the session's connected socket: it is counted as a
// refused connect, reported to the passive health checks, and the
// session's next datagram goes to another backend. A session on a backend
// that goes down moves the same way; one on a draining backend stays until
// it ends. A session counts as a connection of its backend, so leastconn
// and max_conns_per_backend see UDP sessions, and its bytes go to the
// backend's byte counters.
package udp
