// Package portcap says how many new connections per second one backend
// address can take through a proxy before the proxy's network namespace
// runs out of local ports, and warns when a backend comes near that.
//
// When the client closes first, the proxy passes the FIN on to the backend
// first, so the proxy's socket toward the backend ends in TIME_WAIT, in the
// proxy's namespace, for 60 s (TCP_TIMEWAIT_LEN, fixed in the kernel). Each
// such socket holds a local port for its 4-tuple, so one backend address
// ip:port gets at most (free local ports) / (time a port is held) new
// connections per second. The namespace's sysctls decide both numbers:
// ip_local_port_range and ip_local_reserved_ports the ports, tcp_tw_reuse,
// tcp_tw_reuse_delay and tcp_timestamps whether a port in TIME_WAIT may be
// taken again by a new outgoing connection, and after how long.
//
//	s, err := portcap.Read(os.DirFS("/proc/sys/net/ipv4"))
//	perSecond := s.PerSecond(false) // a backend on a network, not on loopback
//
// Reading /proc/sys needs no privilege, so a non-root process can say what
// its namespace allows; changing it is the container runtime's job.
package portcap
