package main

import (
	"cmp"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tierlb/tierlb/admin"
	"github.com/tierlb/tierlb/backends"
	"github.com/tierlb/tierlb/config"
	"github.com/tierlb/tierlb/internal/portcap"
)

// procNetIPv4 is where a process reads its own network namespace's IPv4
// sysctls; reading needs no privilege.
const procNetIPv4 = "/proc/sys/net/ipv4"

// localPorts reads the namespace's local port settings and logs what they
// allow. A namespace whose settings cannot be read (no /proc) only loses
// the figure: tierlb serves all the same.
func localPorts(env environment, log *slog.Logger) (portcap.Settings, bool) {
	if env.netIPv4 == nil {
		return portcap.Settings{}, false
	}
	s, err := portcap.Read(env.netIPv4)
	if err != nil {
		log.Warn("local port capacity unknown", "dir", procNetIPv4, "err", err)
		return portcap.Settings{}, false
	}
	log.Info("local port capacity: new connections per second per backend address when clients close first",
		s.LogAttrs()...)
	return s, true
}

// localPortsLine is what `tierlb check` says of the namespace it runs in.
func localPortsLine(env environment) string {
	if env.netIPv4 == nil {
		return "unknown"
	}
	s, err := portcap.Read(env.netIPv4)
	if err != nil {
		return fmt.Sprintf("unknown (%s: %v)", procNetIPv4, err)
	}
	return s.String()
}

// portSamples reads every TCP backend's connection total, for the warner.
// UDP sessions leave no TIME_WAIT behind.
func portSamples(services admin.Services) func() []portcap.Sample {
	return func() []portcap.Sample {
		var out []portcap.Sample
		for _, svc := range services.Services() {
			if svc.Protocol == config.ProtocolUDP || svc.Set == nil {
				continue
			}
			for _, b := range svc.Set.Backends() {
				out = append(out, portcap.Sample{Service: svc.Name, Backend: b.ID(), Address: b.Address(), Total: b.Total()})
			}
		}
		return out
	}
}

// portCapacity exports tierlb_backend_local_port_capacity for every TCP
// backend, so that a rule can divide a backend's connection rate by it. It
// is an admin.Streamer: /metrics writes its series without gathering them.
type portCapacity struct {
	settings portcap.Settings
	services admin.Services
	desc     *prometheus.Desc
}

const (
	portCapacityName = "tierlb_backend_local_port_capacity"
	portCapacityHelp = "New connections per second the backend's address can take before tierlb's network namespace runs out of local ports, when clients close first (ip_local_port_range, tcp_tw_reuse)."
)

func newPortCapacity(s portcap.Settings, services admin.Services) *portCapacity {
	return &portCapacity{settings: s, services: services,
		desc: prometheus.NewDesc(portCapacityName, portCapacityHelp, []string{"service", "backend"}, nil)}
}

// Describe sends the one descriptor.
func (c *portCapacity) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect sends one series per backend.
func (c *portCapacity) Collect(ch chan<- prometheus.Metric) {
	for _, r := range c.read() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, r.value, r.service, r.backend)
	}
}

// Families names the one family, for admin.Streamer.
func (c *portCapacity) Families() []string { return []string{portCapacityName} }

// Snapshot reads every backend once, for admin.Streamer.
func (c *portCapacity) Snapshot() func(w *admin.FamilyWriter, name string) {
	rows := c.read()
	return func(w *admin.FamilyWriter, name string) {
		w.Family(portCapacityName, portCapacityHelp, dto.MetricType_GAUGE)
		for _, r := range rows {
			w.Sample(r.value, "backend", r.backend, "service", r.service)
		}
	}
}

type capacityRow struct {
	service, backend string
	value            float64
}

// read gives one row per TCP backend, sorted by backend, then service (the
// registry's order); backends sharing an ID within a service (one
// container briefly at two addresses) get the lower figure. One slice a
// scrape: no map, no sample per backend besides its row.
func (c *portCapacity) read() []capacityRow {
	infos := c.services.Services()
	sets := make([][]*backends.Backend, len(infos))
	n := 0
	for i, svc := range infos {
		if svc.Protocol != config.ProtocolUDP && svc.Set != nil {
			sets[i] = svc.Set.Backends()
			n += len(sets[i])
		}
	}
	rows := make([]capacityRow, 0, n)
	for i, svc := range infos {
		for _, b := range sets[i] {
			rows = append(rows, capacityRow{service: svc.Name, backend: b.ID(), value: c.settings.ForAddress(b.Address())})
		}
	}
	slices.SortFunc(rows, func(a, b capacityRow) int {
		return cmp.Or(strings.Compare(a.backend, b.backend), strings.Compare(a.service, b.service))
	})
	out := rows[:0]
	for _, r := range rows {
		if k := len(out) - 1; k >= 0 && out[k].backend == r.backend && out[k].service == r.service {
			out[k].value = min(out[k].value, r.value)
			continue
		}
		out = append(out, r)
	}
	return out
}
