package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/tierlb/tierlb/backends"
)

// The supervisor's share of the hand-over: holding services until the
// process can route, handing its sockets to a successor (as
// handover.Listeners) and stopping accepting on them.

// launch starts a bound instance: its health monitor, and its accept loop
// unless the services are held. With s.mu held.
func (s *supervisor) launch(in *instance) {
	if s.held {
		in.startMonitor()
		return
	}
	in.start(s.failed)
}

// launchFront starts a bound front's accept loop unless held. With s.mu held.
func (s *supervisor) launchFront(fr *front) {
	if !s.held {
		fr.start(s.failed)
	}
}

// hold makes the services Start and Apply bind (or inherit) wait for
// release before they accept.
func (s *supervisor) hold(inh *inheritance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inherit, s.held = inh, true
}

// release lets every service accept; what is inherited from then on was
// closed by the predecessor's hand-over (Ready), so binding resumes.
func (s *supervisor) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held, s.inherit = false, nil
	for _, in := range s.instances {
		if !in.serving() {
			in.serve(s.failed)
		}
	}
	for _, fr := range s.fronts {
		if fr.stopServe == nil {
			fr.start(s.failed)
		}
	}
}

// routable reports whether every service can route: it has a backend up,
// or none at all (nothing to wait for). why names one that cannot.
func (s *supervisor) routable() (ok bool, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var waiting []string
	for name, in := range s.instances {
		bs := in.set.Backends()
		if len(bs) == 0 {
			continue
		}
		up := false
		for _, b := range bs {
			if st, _ := b.State(); st == backends.StateUp {
				up = true
				break
			}
		}
		if !up {
			waiting = append(waiting, name)
		}
	}
	if len(waiting) > 0 {
		return false, "no backend up yet in " + strings.Join(waiting, ", ")
	}
	return true, ""
}

// Files returns duplicates of every listening socket of the running
// services and fronts (handover.Listeners).
func (s *supervisor) Files() ([]*os.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*os.File
	add := func(files []*os.File, err error) error {
		out = append(out, files...)
		return err
	}
	for _, in := range s.instances {
		if len(in.cfg.SNI) > 0 {
			continue // its front listens
		}
		if err := add(in.svc.Files()); err != nil {
			closeFilesList(out)
			return nil, fmt.Errorf("service %s: %w", in.cfg.Name, err)
		}
	}
	for _, fr := range s.fronts {
		if err := add(fr.f.Files()); err != nil {
			closeFilesList(out)
			return nil, fmt.Errorf("listen %s: %w", fr.addr, err)
		}
	}
	return out, nil
}

// StopAccepting takes every listening socket out of the loops without
// closing it (handover.Listeners): the successor accepts on them now.
// Reloads are refused from here on, as during a drain.
func (s *supervisor) StopAccepting(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.draining = true
	for _, in := range s.instances {
		in.svc.StopAccepting()
	}
	for _, fr := range s.fronts {
		fr.f.StopAccepting()
	}
	return nil
}

func closeFilesList(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}
