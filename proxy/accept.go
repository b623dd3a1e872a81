package proxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"
)

// Accept backoff: running out of descriptors (EMFILE, ENFILE) or memory
// makes accept fail while the pending connection stays queued, so retrying
// at once would spin. Waits double from minBackoff to maxBackoff and reset
// after the next success.
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = time.Second
)

// acceptor is the listener as the accept loop uses it; tests inject one
// that fails.
type acceptor interface {
	AcceptTCP() (*net.TCPConn, error)
}

func (s *Service) acceptLoop(ctx context.Context, ln acceptor) error {
	var delay time.Duration
	for {
		nc, err := ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil || s.stopping() {
				return nil
			}
			delay = min(max(2*delay, minBackoff), maxBackoff)
			s.log.Warn("accept failed; retrying", "err", err, "backoff", delay)
			if !s.wait(ctx, delay) {
				return nil
			}
			continue
		}
		delay = 0
		s.admit(nc)
	}
}

// wait sleeps for d; false if the service stopped meanwhile.
func (s *Service) wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.closed:
		return false
	}
}

func (s *Service) stopping() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// admit applies the checks that need no bytes from the client, refusing at
// once, then hands the connection to its own goroutine.
func (s *Service) admit(nc *net.TCPConn) {
	s.metrics.connAccepted()
	cfg := s.cfg.Load()
	peer := addrPort(nc.RemoteAddr())
	n := s.active.Add(1)
	switch {
	case cfg.MaxConns > 0 && n > int64(cfg.MaxConns):
		s.refuse(nc, peer, RejectMaxConns)
		return
	case !contains(cfg.AcceptProxyProtocol, peer.Addr()) && !allowed(cfg.Allow, peer.Addr()):
		// Clients behind a trusted proxy are checked once their PROXY
		// header named them.
		s.refuse(nc, peer, RejectNotAllowed)
		return
	}
	c := &conn{s: s, cfg: cfg, client: nc, peer: peer, start: time.Now()}
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		s.refuse(nc, peer, RejectDraining)
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go s.handle(c)
}

// refuse closes a connection that was counted in active but never proxied,
// with an RST so that a flood of refusals leaves no TIME_WAIT behind.
func (s *Service) refuse(nc *net.TCPConn, peer netip.AddrPort, reason string) {
	s.active.Add(-1)
	s.metrics.connRejected(reason)
	resetOnClose(nc)
	_ = nc.Close()
	s.log.Debug("connection refused", "client", peer, "reason", reason)
}

// allowed reports whether the client may connect: an empty list allows all.
func allowed(allow []netip.Prefix, a netip.Addr) bool {
	return len(allow) == 0 || contains(allow, a)
}

func contains(nets []netip.Prefix, a netip.Addr) bool {
	for _, p := range nets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// addrPort converts a TCP address, unmapping IPv4 clients of a dual-stack
// listener so that 10.0.0.0/8 matches them.
func addrPort(a net.Addr) netip.AddrPort {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}
	}
	ap := ta.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
