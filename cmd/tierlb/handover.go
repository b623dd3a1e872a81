package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tierlb/tierlb/config"
	"github.com/tierlb/tierlb/handover"
	"github.com/tierlb/tierlb/internal/listenaddr"
	"github.com/tierlb/tierlb/proxy"
	"github.com/tierlb/tierlb/proxy/udp"
)

// The hand-over (handover.socket): a starting tierlb asks the socket for
// the listening sockets of a running one and uses every one its config
// listens on; what it does not find it binds. It accepts only once it can
// route (discovery synced, a backend up in every service that has any),
// then tells its predecessor, which stops accepting and drains. Then it
// serves the socket for its own successor. The old process thus accepts
// until the new one does: nothing queued is lost and no client refused.

// Bounds of the hand-over's steps.
const (
	fetchTimeout = 30 * time.Second // a predecessor answering (busy with another successor: retried)
	routeTimeout = 30 * time.Second // discovery's first sync and first health checks, before accepting anyway
)

// inheritance is what a predecessor handed over, until the new process
// accepts; nil (no hand-over socket, or no predecessor) binds everything.
type inheritance struct {
	inh *handover.Inheritance
	log *slog.Logger
}

// fetchPredecessor asks path for a predecessor's sockets. No predecessor
// is not an error: the process binds as usual.
func fetchPredecessor(ctx context.Context, path string, log *slog.Logger) (*inheritance, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	ver, _ := buildVersion()
	inh, err := handover.Fetch(ctx, path, handover.Options{Logger: log, Version: ver})
	if errors.Is(err, handover.ErrNoPredecessor) {
		log.Info("hand-over: no running tierlb at the hand-over socket; binding", "socket", path)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("hand-over socket %s: %w", path, err)
	}
	log.Info("hand-over: took the listening sockets of a running tierlb", "socket", path, "pid", inh.PID, "version", inh.Version, "sockets", len(inh.Sockets()))
	return &inheritance{inh: inh, log: log}, nil
}

// listenFiler is a listener that can take sockets bound elsewhere.
type listenFiler interface {
	ListenFiles(files []*os.File) error
}

// listen gives lf the inherited sockets of listen (every port of a range),
// binding the ports none was inherited for; with nothing inherited at all
// it binds as usual (bind). A TCP port takes one socket; a UDP port every
// socket of its SO_REUSEPORT group, one per loop of the predecessor.
func (h *inheritance) listen(service, protocol, listen string, reusePort bool, lf listenFiler, bind func() error) error {
	if h == nil {
		return bind()
	}
	addrs, err := listenaddr.Expand(listen)
	if err != nil {
		return err
	}
	per := 1
	if protocol == config.ProtocolUDP {
		per = handover.MaxSockets
	}
	byAddr := make([][]handover.Socket, len(addrs))
	inherited := 0
	for i, a := range addrs {
		ap, err := addrPort(a)
		if err != nil {
			return err
		}
		byAddr[i] = h.inh.Take(protocol, ap, per)
		inherited += len(byAddr[i])
	}
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	if inherited == 0 {
		if err := bind(); err != nil {
			return err
		}
		h.log.Info("hand-over: nothing inherited; bound", "service", service, "protocol", protocol, "listen", listen)
		return nil
	}
	var fresh []string
	for i, a := range addrs {
		for _, s := range byAddr[i] {
			files = append(files, s.File)
		}
		if len(byAddr[i]) > 0 {
			continue
		}
		var f *os.File
		if protocol == config.ProtocolUDP {
			f, err = udp.ListenFile(a, reusePort)
		} else {
			f, err = proxy.ListenFile(a, reusePort)
		}
		if err != nil {
			return fmt.Errorf("listen for service %s on %s: %w", service, a, err)
		}
		files = append(files, f)
		fresh = append(fresh, a)
	}
	if err := lf.ListenFiles(files); err != nil {
		return err
	}
	h.log.Info("hand-over: inherited", "service", service, "protocol", protocol, "listen", listen, "sockets", inherited, "bound", strings.Join(fresh, ","))
	return nil
}

// admin returns the inherited admin listener of addr, nil when none.
func (h *inheritance) admin(addr string) (net.Listener, error) {
	if h == nil || addr == "" {
		return nil, nil
	}
	ap, err := addrPort(addr)
	if err != nil {
		return nil, nil // the admin listener's own bind reports it
	}
	got := h.inh.Take(config.ProtocolTCP, ap, 1)
	if len(got) == 0 {
		return nil, nil
	}
	defer got[0].File.Close()
	ln, err := net.FileListener(got[0].File)
	if err != nil {
		return nil, fmt.Errorf("admin listener handed over: %w", err)
	}
	h.log.Info("hand-over: inherited the admin listener", "listen", addr)
	return ln, nil
}

// ready tells the predecessor that this process accepts; it stops
// accepting. Inherited sockets no service wants are closed, as a reload
// closes the listener of a service it removes.
func (h *inheritance) ready(ctx context.Context) error {
	closed, err := h.inh.Ready(ctx)
	for _, d := range closed {
		h.log.Info("hand-over: closed an inherited socket no service listens on", "socket", d.String())
	}
	return err
}

// abandon gives up before ready: the predecessor goes on accepting.
func (h *inheritance) abandon() {
	if h != nil {
		h.inh.Close()
	}
}

// addrPort reads a single-port listen address; an empty host is every
// address.
func addrPort(a string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return netip.AddrPort{}, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q: port %q", a, port)
	}
	if host == "" {
		return netip.AddrPortFrom(netip.Addr{}, uint16(p)), nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q: listen host must be an IP address", a)
	}
	return netip.AddrPortFrom(ip, uint16(p)), nil
}

// handOver is the process's side of the hand-over socket: taking over
// from a predecessor (when inh is set), then serving the socket for a
// successor.
type handOver struct {
	inh     *inheritance
	sup     *supervisor
	ready   *readiness
	srv     *handover.Server
	log     *slog.Logger
	started time.Time
}

// newHandover binds the hand-over socket beside its path (published when
// this process accepts), for a successor to take this process's sockets.
func newHandover(path string, inh *inheritance, sup *supervisor, ready *readiness, adm adminFiles, stopAdmin func(), log *slog.Logger) (*handOver, error) {
	ver, _ := buildVersion()
	src := &handoverSource{sup: sup, adm: adm, stopAdmin: stopAdmin}
	// A successor may wait routeTimeout before it accepts: this process
	// waits longer for its ready, or both would go on accepting.
	srv, err := handover.Listen(path, src, handover.Options{Logger: log, Version: ver, ReadyTimeout: routeTimeout + fetchTimeout})
	if err != nil {
		return nil, err
	}
	return &handOver{inh: inh, sup: sup, ready: ready, srv: srv, log: log, started: processStart}, nil
}

// run takes over from the predecessor, if any, then answers successors
// until ctx is done; after a hand-over it calls handedOver.
func (h *handOver) run(ctx context.Context, handedOver context.CancelFunc) error {
	if h.inh != nil {
		h.takeOver(ctx)
		if ctx.Err() != nil {
			h.srv.Close()
			return nil
		}
	}
	if err := h.srv.Publish(); err != nil {
		h.srv.Close()
		return err
	}
	go func() {
		select {
		case <-h.srv.HandedOver():
			succ := h.srv.Successor()
			h.log.Info("hand-over: a successor accepts on the sockets; draining", "successor_pid", succ.PID, "successor_version", succ.Version)
			handedOver()
		case <-ctx.Done():
		}
	}()
	return h.srv.Run(ctx)
}

// takeOver waits until the services can route (bounded), lets them
// accept, and tells the predecessor to stop.
func (h *handOver) takeOver(ctx context.Context) {
	deadline := time.Now().Add(routeTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, why := h.ready.Ready()
		if ok {
			ok, why = h.sup.routable()
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			h.log.Warn("hand-over: accepting before every service can route", "waited", routeTimeout, "reason", why)
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
	h.sup.release()
	h.log.Info("hand-over: accepting on the inherited sockets", "since_start", time.Since(h.started).Round(time.Microsecond))
	rctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	if err := h.inh.ready(rctx); err != nil {
		// Both accept until the predecessor's own drain: nothing is lost,
		// but it keeps serving; say so loudly.
		h.log.Error("hand-over: the predecessor did not confirm that it stopped accepting", "err", err)
		return
	}
	h.log.Info("hand-over: the predecessor stopped accepting; it drains", "pid", h.inh.inh.PID)
}

// adminFiles is the admin server's share of the hand-over.
type adminFiles interface {
	File() (*os.File, error)
}

// handoverSource is what this process hands over: the services' sockets
// and the admin listener (handover.Listeners).
type handoverSource struct {
	sup       *supervisor
	adm       adminFiles // nil without an admin listener
	stopAdmin func()
}

func (h *handoverSource) Files() ([]*os.File, error) {
	files, err := h.sup.Files()
	if err != nil || h.adm == nil {
		return files, err
	}
	f, err := h.adm.File()
	if err != nil {
		closeFilesList(files)
		return nil, err
	}
	return append(files, f), nil
}

func (h *handoverSource) StopAccepting(ctx context.Context) error {
	err := h.sup.StopAccepting(ctx)
	if h.adm != nil {
		h.stopAdmin() // the successor answers on the admin listener now
	}
	return err
}

// processStart is when this process started, for the hand-over's log.
var processStart = time.Now()
