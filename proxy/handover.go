//go:build linux

package proxy

import (
	"errors"
	"fmt"
	"net"
	"os"
)

// Handing listening sockets over: a process that replaces tierlb takes
// them (over a unix socket, SCM_RIGHTS) instead of binding anew, so that
// no client is refused while one process stops and the other starts. A
// TCP listener is one socket with one accept queue (doc.go), so a client
// that arrives while neither process accepts waits in that queue, and
// the successor accepts it.

// StopAccepting takes the service's listening sockets out of the loops
// without closing them: connections still queued on them stay queued,
// for a process that takes the sockets over (Files). Open connections go
// on; Serve returns. Idempotent; Shutdown closes the sockets.
func (s *Service) StopAccepting() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopAccepting()
}

func (s *Service) stopAccepting() {
	if s.accepting {
		for _, ln := range s.lns {
			ln.unregister(s.set)
		}
		s.accepting = false
	}
	if !s.lnClosed {
		s.lnClosed = true
		close(s.served)
	}
}

// Files returns duplicates of the service's listening sockets, one per
// port, for handing to another process; the caller closes them. The
// service keeps its own.
func (s *Service) Files() ([]*os.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*os.File
	for _, ln := range s.lns {
		if ln.fd < 0 {
			return nil, fmt.Errorf("service %s: %w", s.name, net.ErrClosed)
		}
		f, err := ln.file()
		if err != nil {
			for _, f := range out {
				f.Close()
			}
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// ListenFiles makes the service accept on listening sockets bound
// elsewhere (a predecessor's, from Files) instead of binding its own:
// Listen with sockets. The service keeps duplicates; the caller closes
// files.
func (s *Service) ListenFiles(files []*os.File) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.fed:
		return fmt.Errorf("service %s: a service with SNI names has no listener", s.name)
	case s.lns != nil:
		return fmt.Errorf("service %s: already listening", s.name)
	case len(files) == 0:
		return fmt.Errorf("service %s: no listening sockets", s.name)
	}
	var lns []*listener
	for _, f := range files {
		rc, err := f.SyscallConn()
		var ln *listener
		var lerr error
		if err == nil {
			err = rc.Control(func(fd uintptr) { ln, lerr = listenerFromFD(s, int(fd)) })
		}
		if err = errors.Join(err, lerr); err != nil {
			for _, ln := range lns {
				ln.close()
			}
			return fmt.Errorf("service %s: %w", s.name, err)
		}
		lns = append(lns, ln)
	}
	s.lns = lns
	return nil
}
