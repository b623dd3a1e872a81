//go:build linux

package udp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/tierlb/tierlb/internal/listenaddr"
)

// socket is one bound listening socket, owned by one loop.
type socket struct {
	fd       int
	v6       bool // AF_INET6 (Go binds a wildcard address dual-stack)
	wildcard bool // bound to every address: replies need pktinfo
	addr     *net.UDPAddr
}

// listenSockets binds the sockets of addr. A single port gets n sockets,
// in one SO_REUSEPORT group when n > 1 or reusePort is set; when addr has
// port 0 the later sockets take the port the first one got. A port range
// gets one socket per port (a group per port would hold n times as many
// descriptors, and the ports spread clients over the loops already). Go's
// resolver and bind rules apply, so "host:port" means the same as for TCP
// services.
func listenSockets(addr string, n int, reusePort bool) ([]socket, error) {
	addrs, err := listenaddr.Expand(addr)
	if err != nil {
		return nil, err
	}
	if len(addrs) == 1 {
		return listenGroup(addrs[0], n, reusePort)
	}
	var out []socket
	for _, a := range addrs {
		socks, err := listenGroup(a, 1, reusePort)
		if err != nil {
			for _, s := range out {
				unix.Close(s.fd)
			}
			return nil, err
		}
		out = append(out, socks...)
	}
	return out, nil
}

// listenGroup binds n sockets to addr, in one SO_REUSEPORT group when
// n > 1 or reusePort is set.
func listenGroup(addr string, n int, reusePort bool) ([]socket, error) {
	group := n > 1 || reusePort
	lc := net.ListenConfig{Control: func(network, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = setListenOptions(int(fd), network, group)
		})
		return errors.Join(err, serr)
	}}
	var out []socket
	fail := func(err error) ([]socket, error) {
		for _, s := range out {
			unix.Close(s.fd)
		}
		return nil, err
	}
	for i := range max(n, 1) {
		if i == 1 {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return fail(err)
			}
			addr = net.JoinHostPort(host, strconv.Itoa(out[0].addr.Port))
		}
		pc, err := lc.ListenPacket(context.Background(), "udp", addr)
		if err != nil {
			return fail(err)
		}
		s, err := takeSocket(pc.(*net.UDPConn))
		if err != nil {
			return fail(err)
		}
		out = append(out, s)
	}
	return out, nil
}

// setListenOptions asks for each datagram's destination address, so that
// a wildcard listener can answer from it (cmsg.go), and joins the
// SO_REUSEPORT group.
func setListenOptions(fd int, network string, group bool) error {
	if group {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return fmt.Errorf("set SO_REUSEPORT: %w", err)
		}
	}
	if network == "udp4" {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_PKTINFO, 1); err != nil {
			return fmt.Errorf("set IP_PKTINFO: %w", err)
		}
		return nil
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1); err != nil {
		return fmt.Errorf("set IPV6_RECVPKTINFO: %w", err)
	}
	return nil
}

// takeSocket duplicates the socket of pc for a loop and closes Go's own
// descriptor, so that Go's netpoller does not hear about every datagram.
func takeSocket(pc *net.UDPConn) (socket, error) {
	defer pc.Close()
	rc, err := pc.SyscallConn()
	if err != nil {
		return socket{}, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(s uintptr) {
		fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return socket{}, err
	}
	if derr != nil {
		return socket{}, fmt.Errorf("duplicate socket: %w", derr)
	}
	la := pc.LocalAddr().(*net.UDPAddr)
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return socket{}, fmt.Errorf("socket address: %w", err)
	}
	_, v6 := sa.(*unix.SockaddrInet6)
	return socket{fd: fd, v6: v6, wildcard: la.IP.IsUnspecified(), addr: la}, nil
}
