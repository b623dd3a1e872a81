package config

import "time"

// Config is the whole user configuration as SPEC.md's config file describes
// it. It is decoded from a merge of defaults, the file, TIERLB_* variables
// and flags (load.go), then validated (validate.go) and converted into the
// packages' own plain structs (convert.go).
//
// The yaml tags are for `tierlb check`, which prints the resolved config.
type Config struct {
	Admin    AdminConfig    `mapstructure:"admin" yaml:"admin"`
	Log      LogConfig      `mapstructure:"log" yaml:"log"`
	Shutdown ShutdownConfig `mapstructure:"shutdown" yaml:"shutdown"`
	Engine   EngineConfig   `mapstructure:"engine" yaml:"engine"`
	Docker   DockerConfig   `mapstructure:"docker" yaml:"docker"`
	Handover HandoverConfig `mapstructure:"handover" yaml:"handover"`
	// ConfigWatch polls the config file this often and reloads it when its
	// content changes, as SIGHUP does; 0 turns the watch off.
	ConfigWatch time.Duration   `mapstructure:"config_watch" yaml:"config_watch"`
	Services    []ServiceConfig `mapstructure:"services" yaml:"services"`
}

// AdminConfig is the admin HTTP listener.
type AdminConfig struct {
	Listen string `mapstructure:"listen" yaml:"listen"` // "" disables
	Token  string `mapstructure:"token" yaml:"token"`
	// Pprof serves net/http/pprof under /debug/pprof/ on the admin listener.
	Pprof bool `mapstructure:"pprof" yaml:"pprof"`
}

// LogConfig selects the slog handler and the access log.
type LogConfig struct {
	Level  string `mapstructure:"level" yaml:"level"`   // debug|info|warn|error
	Format string `mapstructure:"format" yaml:"format"` // text|json
	Access bool   `mapstructure:"access" yaml:"access"`
}

// ShutdownConfig bounds the drain on SIGTERM/SIGINT.
type ShutdownConfig struct {
	DrainTimeout time.Duration `mapstructure:"drain_timeout" yaml:"drain_timeout"`
}

// MaxLoops bounds engine.loops: far more loops than any machine has cores
// would only cost memory and wakeups.
const MaxLoops = 1024

// HandoverConfig is the socket on which a running tierlb hands its
// listening sockets to its successor (package handover).
type HandoverConfig struct {
	// Socket is the unix socket path; "" turns hand-over off.
	Socket string `mapstructure:"socket" yaml:"socket"`
}

// EngineConfig is the data path's share of the process.
type EngineConfig struct {
	// Loops is the number of event loops each service runs; 0 means one
	// per core (GOMAXPROCS as the process starts). It applies at start.
	Loops int `mapstructure:"loops" yaml:"loops"`
	// IOUring lets the loops batch small messages through io_uring where
	// the kernel allows it; false sends each with its own syscalls.
	IOUring bool `mapstructure:"io_uring" yaml:"io_uring"`
}

// DockerConfig is the Docker discovery provider's configuration.
type DockerConfig struct {
	// Enabled is "auto", "true" or "false"; auto turns discovery on when
	// DOCKER_HOST is set or the default socket exists.
	Enabled          string        `mapstructure:"enabled" yaml:"enabled"`
	Host             string        `mapstructure:"host" yaml:"host"`
	LabelPrefix      string        `mapstructure:"label_prefix" yaml:"label_prefix"`
	ExposedByDefault bool          `mapstructure:"exposed_by_default" yaml:"exposed_by_default"`
	Networks         []string      `mapstructure:"networks" yaml:"networks"`
	ResyncInterval   time.Duration `mapstructure:"resync_interval" yaml:"resync_interval"`
	LabelServices    bool          `mapstructure:"label_services" yaml:"label_services"`
	// Swarm is "auto", "true" or "false"; auto discovers Swarm tasks when
	// the engine is a Swarm manager.
	Swarm     string        `mapstructure:"swarm" yaml:"swarm"`
	SwarmPoll time.Duration `mapstructure:"swarm_poll" yaml:"swarm_poll"`
}

// ServiceConfig is one entry of services. Every field has a default
// (defaults.go) applied per entry before decoding. A service declared by
// container labels is one too (LabelService).
type ServiceConfig struct {
	Name               string         `mapstructure:"name" yaml:"name"`
	Listen             string         `mapstructure:"listen" yaml:"listen"`
	SNI                []string       `mapstructure:"sni" yaml:"sni"`           // TLS server names, on a listen address services share
	Protocol           string         `mapstructure:"protocol" yaml:"protocol"` // tcp|udp
	Balance            string         `mapstructure:"balance" yaml:"balance"`
	Backends           BackendsConfig `mapstructure:"backends" yaml:"backends"`
	Health             HealthConfig   `mapstructure:"health" yaml:"health"`
	SlowStart          time.Duration  `mapstructure:"slow_start" yaml:"slow_start"`
	Timeouts           TimeoutsConfig `mapstructure:"timeouts" yaml:"timeouts"`
	Retries            int            `mapstructure:"retries" yaml:"retries"`
	MaxConns           int            `mapstructure:"max_conns" yaml:"max_conns"`
	MaxConnsPerBackend int            `mapstructure:"max_conns_per_backend" yaml:"max_conns_per_backend"`
	MaxConnsPerClient  int            `mapstructure:"max_conns_per_client" yaml:"max_conns_per_client"`
	DeferDial          bool           `mapstructure:"defer_dial" yaml:"defer_dial"`
	OnBackendDown      string         `mapstructure:"on_backend_down" yaml:"on_backend_down"` // keep|close
	ProxyProtocol      string         `mapstructure:"proxy_protocol" yaml:"proxy_protocol"`   // ""|v1|v2
	AcceptProxyProto   []string       `mapstructure:"accept_proxy_protocol" yaml:"accept_proxy_protocol"`
	Allow              []string       `mapstructure:"allow" yaml:"allow"`
	ReusePort          bool           `mapstructure:"reuse_port" yaml:"reuse_port"`
	ZeroCopy           string         `mapstructure:"zero_copy" yaml:"zero_copy"` // auto|off
	// UDP is the udp section; only a UDP service has one.
	UDP *UDPConfig `mapstructure:"udp" yaml:"udp,omitempty"`
}

// UDPConfig is the udp section of a UDP service.
type UDPConfig struct {
	SessionTimeout time.Duration `mapstructure:"session_timeout" yaml:"session_timeout"`
	MaxSessions    int           `mapstructure:"max_sessions" yaml:"max_sessions"`
	Responses      int           `mapstructure:"responses" yaml:"responses"` // 0: any
}

// The service protocols.
const (
	ProtocolTCP = "tcp"
	ProtocolUDP = "udp"
)

// IsUDP reports whether the service is a UDP service.
func (s *ServiceConfig) IsUDP() bool { return s.Protocol == ProtocolUDP }

// BackendsConfig says where a service's backends come from; at least one of
// the two must be set.
type BackendsConfig struct {
	// Static entries are written either as "host:port" or as a map; the
	// decode hook turns both into StaticBackend.
	Static []StaticBackend `mapstructure:"static" yaml:"static"`
	Docker *DockerSelector `mapstructure:"docker" yaml:"docker,omitempty"`
}

// StaticBackend is one fixed backend address.
type StaticBackend struct {
	Address  string `mapstructure:"address" yaml:"address"`
	Weight   int    `mapstructure:"weight" yaml:"weight"`
	Priority int    `mapstructure:"priority" yaml:"priority"`
}

// DockerSelector picks a service's containers by label.
type DockerSelector struct {
	Service  string            `mapstructure:"service" yaml:"service"`
	Selector map[string]string `mapstructure:"selector" yaml:"selector"`
	Port     int               `mapstructure:"port" yaml:"port"` // 0: tierlb.port label, else the only exposed port
}

// HealthConfig is a service's active and passive health checking.
type HealthConfig struct {
	Type     string        `mapstructure:"type" yaml:"type"` // tcp|http|send-expect|docker|none
	Interval time.Duration `mapstructure:"interval" yaml:"interval"`
	Timeout  time.Duration `mapstructure:"timeout" yaml:"timeout"`
	Rise     int           `mapstructure:"rise" yaml:"rise"`
	Fall     int           `mapstructure:"fall" yaml:"fall"`
	HTTP     HTTPCheck     `mapstructure:"http" yaml:"http"`
	Send     string        `mapstructure:"send" yaml:"send"`
	Expect   string        `mapstructure:"expect" yaml:"expect"`
	Passive  PassiveCheck  `mapstructure:"passive" yaml:"passive"`
}

// HTTPCheck is the request of an http health check.
type HTTPCheck struct {
	Path         string `mapstructure:"path" yaml:"path"`
	ExpectStatus string `mapstructure:"expect_status" yaml:"expect_status"`
	Host         string `mapstructure:"host" yaml:"host"`
}

// PassiveCheck ejects a backend after consecutive dial failures.
type PassiveCheck struct {
	MaxFails    int           `mapstructure:"max_fails" yaml:"max_fails"` // 0 turns passive checks off
	FailTimeout time.Duration `mapstructure:"fail_timeout" yaml:"fail_timeout"`
}

// TimeoutsConfig bounds each phase of a proxied connection.
type TimeoutsConfig struct {
	Connect   time.Duration `mapstructure:"connect" yaml:"connect"`
	Idle      time.Duration `mapstructure:"idle" yaml:"idle"`
	HalfClose time.Duration `mapstructure:"half_close" yaml:"half_close"`
	// ClientHello bounds reading the TLS ClientHello on a listen address
	// shared by sni services.
	ClientHello time.Duration `mapstructure:"client_hello" yaml:"client_hello"`
	FirstData   time.Duration `mapstructure:"first_data" yaml:"first_data"` // with defer_dial
}
