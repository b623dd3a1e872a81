package main

import (
	"context"
	"fmt"
	"net"
	"os"

	"github.com/tierlb/tierlb/backends"
	"github.com/tierlb/tierlb/config"
	"github.com/tierlb/tierlb/proxy"
	"github.com/tierlb/tierlb/proxy/udp"
)

// dataPath is what an instance needs of its service's data path: a
// *proxy.Service for a TCP service, a *udp.Service for a UDP one. Both
// bind in Listen, serve until ctx is done, and drain in Shutdown.
type dataPath interface {
	Listen() error
	Addr() net.Addr
	Serve(ctx context.Context) error
	Shutdown(ctx context.Context) error
	Active() int
	// For the hand-over (package handover): take sockets bound elsewhere
	// instead of binding, give duplicates of the sockets, stop accepting
	// on them without closing them.
	ListenFiles(files []*os.File) error
	Files() ([]*os.File, error)
	StopAccepting()
}

// newDataPath builds the data path of cfg's protocol over set; passive
// health hears its backend failures.
func newDataPath(cfg *config.ServiceConfig, accessLog bool, set *backends.Set, passive proxy.DialObserver, d deps) (dataPath, error) {
	if cfg.IsUDP() {
		uc, err := cfg.UDPConfig(accessLog)
		if err != nil {
			return nil, err
		}
		svc, err := udp.NewService(uc, set, udp.Options{Logger: d.Log, AccessLog: d.AccessLog, Metrics: d.UDPMetrics, Observer: passive, Loops: d.Loops})
		if err != nil {
			return nil, fmt.Errorf("service %s: %w", cfg.Name, err)
		}
		return svc, nil
	}
	pc, err := cfg.ProxyConfig(accessLog)
	if err != nil {
		return nil, err
	}
	svc, err := proxy.NewService(pc, set, proxy.Options{Logger: d.Log, AccessLog: d.AccessLog, Metrics: d.ProxyMetrics, Observer: passive, Loops: d.Loops})
	if err != nil {
		return nil, fmt.Errorf("service %s: %w", cfg.Name, err)
	}
	return svc, nil
}

// reconfiguration converts cfg for a running data path of the same
// protocol (the supervisor replaces an instance whose protocol changed)
// and returns what applies it, so that a conversion error changes nothing.
func reconfiguration(dp dataPath, cfg *config.ServiceConfig, accessLog bool) (func(), error) {
	switch svc := dp.(type) {
	case *udp.Service:
		uc, err := cfg.UDPConfig(accessLog)
		if err != nil {
			return nil, err
		}
		return func() { svc.Reconfigure(uc) }, nil
	case *proxy.Service:
		pc, err := cfg.ProxyConfig(accessLog)
		if err != nil {
			return nil, err
		}
		return func() { svc.Reconfigure(pc) }, nil
	}
	return nil, fmt.Errorf("service %s: a %s service cannot become a %s one in place", cfg.Name, protocolOf(dp), cfg.Protocol)
}

func protocolOf(dp dataPath) string {
	if _, ok := dp.(*udp.Service); ok {
		return config.ProtocolUDP
	}
	return config.ProtocolTCP
}

// forgetMetrics deletes the per-service series of a service gone for good.
func (d deps) forgetMetrics(name string) {
	d.ProxyMetrics.ForgetService(name)
	d.UDPMetrics.ForgetService(name)
}
