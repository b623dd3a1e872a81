//go:build linux

package udp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

// Files returns duplicates of the service's sockets, for handing to a
// process that takes them over; the caller closes them. The service keeps
// its own: its sessions' replies leave through them until it drains.
func (s *Service) Files() ([]*os.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("service %s: %w", s.name, net.ErrClosed)
	}
	var out []*os.File
	for _, ln := range s.lns {
		fd, err := unix.FcntlInt(uintptr(ln.fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			for _, f := range out {
				f.Close()
			}
			return nil, fmt.Errorf("service %s: duplicate socket: %w", s.name, err)
		}
		out = append(out, os.NewFile(uintptr(fd), "udp "+ln.addr.String()))
	}
	return out, nil
}

// ListenFiles makes the service receive on sockets bound elsewhere (a
// predecessor's, from Files, or ListenFile's) instead of binding its own:
// Listen with sockets. Any number per port does: socket i goes to loop i
// of the set, as Listen's do. The service keeps duplicates; the caller
// closes files.
func (s *Service) ListenFiles(files []*os.File) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.lns != nil:
		return fmt.Errorf("service %s: already listening", s.name)
	case s.closed:
		return fmt.Errorf("service %s: %w", s.name, net.ErrClosed)
	case len(files) == 0:
		return fmt.Errorf("service %s: no sockets", s.name)
	}
	var lns []*listener
	fail := func(err error) error {
		for _, ln := range lns {
			unix.Close(ln.fd)
		}
		return fmt.Errorf("service %s: %w", s.name, err)
	}
	for _, f := range files {
		rc, err := f.SyscallConn()
		if err != nil {
			return fail(err)
		}
		var sk socket
		var serr error
		if err := rc.Control(func(fd uintptr) { sk, serr = adopt(int(fd)) }); err != nil {
			return fail(err)
		}
		if serr != nil {
			return fail(serr)
		}
		lns = append(lns, &listener{
			s: s, fd: sk.fd, v6: sk.v6, pktinfo: sk.wildcard, addr: sk.addr, port: sk.addr.Port,
			sessions: make(map[netip.AddrPort]*session),
		})
	}
	s.lns = lns
	s.m.addService(s)
	return nil
}

// adopt duplicates fd, a bound UDP socket, for a loop, with the options
// Listen sets (asking again is harmless; joining a SO_REUSEPORT group is
// the binder's affair).
func adopt(fd int) (socket, error) {
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return socket{}, err
	}
	if typ != unix.SOCK_DGRAM {
		return socket{}, errors.New("not a UDP socket")
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return socket{}, fmt.Errorf("socket address: %w", err)
	}
	var sk socket
	network := "udp4"
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		ip := netip.AddrFrom4(a.Addr)
		sk.addr, sk.wildcard = net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(a.Port))), ip.IsUnspecified()
	case *unix.SockaddrInet6:
		ip := netip.AddrFrom16(a.Addr)
		sk.addr, sk.wildcard, sk.v6 = net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(a.Port))), ip.IsUnspecified(), true
		network = "udp6"
	default:
		return socket{}, fmt.Errorf("socket address %T: not IPv4 or IPv6", sa)
	}
	if err := setListenOptions(fd, network, false); err != nil {
		return socket{}, err
	}
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return socket{}, fmt.Errorf("duplicate socket: %w", err)
	}
	sk.fd = dup
	return sk, nil
}

// ListenFile binds one socket to addr (a single port) as Listen does, for
// ListenFiles beside inherited sockets.
func ListenFile(addr string, reusePort bool) (*os.File, error) {
	socks, err := listenGroup(addr, 1, reusePort)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(socks[0].fd), "udp "+addr), nil
}

// StopAccepting stops receiving on the service's sockets without closing
// them: datagrams from now on are for the process that took the sockets
// over, and a session of this one still sends its replies through them
// until Shutdown drains it. Serve goes on until Shutdown.
func (s *Service) StopAccepting() {
	s.mu.Lock()
	served := s.served
	s.mu.Unlock()
	if !served {
		return
	}
	s.inLoops(func(ln *listener) int {
		_ = ln.lp.el.Del(ln.fd)
		return 0
	})
}
