package docker

import (
	"log/slog"
	"maps"
	"time"

	"github.com/moby/moby/client"
	"github.com/tierlb/tierlb/backends"
)

// Config is the docker section of the user's config. The zero value works.
type Config struct {
	// Host is the engine address; "" means DOCKER_HOST, else the default
	// unix socket. DOCKER_TLS_VERIFY and DOCKER_CERT_PATH are honoured.
	Host string
	// LabelPrefix prefixes every label tierlb reads ("tierlb").
	LabelPrefix string
	// ExposedByDefault routes containers that match a configured selector
	// even without a tierlb.service label or tierlb.enable=true. When false
	// (the default) a container must opt in with one of those labels.
	// tierlb.enable=false always wins.
	ExposedByDefault bool
	// Networks, when not empty, restricts routing to these networks.
	Networks []string
	// ResyncInterval is the period of the full relist done even while the
	// event stream is healthy (30s).
	ResyncInterval time.Duration
	// LabelServices lets containers declare services with tierlb.listen.
	LabelServices bool
	// ContainerID names the proxy's own container; "" means
	// TIERLB_CONTAINER_ID, else /proc/self/mountinfo, else HOSTNAME.
	ContainerID string
	// Swarm is "auto" (or ""), "true" or "false": whether Swarm services'
	// tasks are discovered too. Auto turns it on when the engine says it
	// is a Swarm manager; true makes any other engine an error.
	Swarm string
	// SwarmPoll is the period of the filtered task relist (1s): Swarm
	// sends no task events, so this bounds how stale a task can be when
	// no service, node or container event announced its change.
	SwarmPoll time.Duration
}

func (c Config) labelPrefix() string {
	if c.LabelPrefix == "" {
		return "tierlb"
	}
	return c.LabelPrefix
}

func (c Config) swarmPoll() time.Duration {
	if c.SwarmPoll <= 0 {
		return time.Second
	}
	return c.SwarmPoll
}

func (c Config) resyncInterval() time.Duration {
	if c.ResyncInterval <= 0 {
		return 30 * time.Second
	}
	return c.ResyncInterval
}

// ServiceSelector says which containers are replicas of a configured service.
type ServiceSelector struct {
	// Service is the tierlb.service label value to match; "" with an empty
	// Selector means Name.
	Service string
	// Name is the tierlb service the replicas belong to.
	Name string
	// Selector is a label map every replica must carry, e.g.
	// {"com.docker.compose.service": "app"}.
	Selector map[string]string
	// Port is the port dialed on every replica; 0 means the tierlb.port
	// label, else the container's only exposed port.
	Port int
	// DockerHealth routes only containers whose Docker HEALTHCHECK says
	// healthy (health type docker); containers without one are routed.
	DockerHealth bool
	// StaticOnly marks a configured service without Docker backends: its
	// name is taken (a tierlb.listen for it is ignored), but no container
	// is ever routed to it, whatever its labels say.
	StaticOnly bool
}

// matches reports whether a container with these labels (and tierlb.service
// value svc) is a replica of the service.
func (s ServiceSelector) matches(svc string, label func(string) (string, bool)) bool {
	if s.StaticOnly {
		return false
	}
	want := s.Service
	if want == "" && len(s.Selector) == 0 {
		want = s.Name
	}
	if want != "" && svc != want {
		return false
	}
	for k, v := range s.Selector {
		if got, ok := label(k); !ok || got != v {
			return false
		}
	}
	return true
}

func cloneSelectors(in []ServiceSelector) []ServiceSelector {
	out := make([]ServiceSelector, len(in))
	for i, s := range in {
		s.Selector = maps.Clone(s.Selector)
		out[i] = s
	}
	return out
}

// Sink receives what the provider finds. Calls come from Run's goroutine,
// one at a time.
type Sink interface {
	// UpdateBackends hands a service its full list of Docker backends. The
	// sink may keep specs: the provider never changes a slice it handed over.
	UpdateBackends(service string, specs []backends.Spec)
	// DeclareServices hands the full list of services declared by labels,
	// sorted by name, whenever it changes, after the same publish's
	// UpdateBackends: a newly declared service's backends have arrived
	// already, so the sink keeps the backends of a service it does not run
	// yet. A name that the config already has must be ignored by the sink
	// (the config wins).
	DeclareServices(decls []LabelService)
}

// LabelService is a service declared by container labels (tierlb.listen).
type LabelService struct {
	Name   string `json:"name"`
	Listen string `json:"listen"`
	// Settings are the service-level labels of the oldest replica, keyed
	// like the config file without the prefix ("balance", "health.type").
	Settings map[string]string `json:"settings,omitempty"`
	// Container is the name of the replica whose labels were used.
	Container string `json:"container"`
	// Conflicts describes replicas whose labels disagree with Container's.
	Conflicts []string `json:"conflicts,omitempty"`
}

// Explanation says what tierlb made of one container for one service.
type Explanation struct {
	Container string `json:"container"` // full ID; "" for a task not started yet
	Name      string `json:"name"`
	Service   string `json:"service"`
	// Task, Node and Slot place a Swarm task: its ID, the hostname of its
	// node and its replica number (0 for a global service's task). All
	// empty for plain containers.
	Task    string `json:"task,omitempty"`
	Node    string `json:"node,omitempty"`
	Slot    int    `json:"slot,omitempty"`
	Network string `json:"network,omitempty"`
	Address string `json:"address,omitempty"`
	Routed  bool   `json:"routed"`
	// Reason says why the container is not routed, or why it is draining.
	Reason string `json:"reason,omitempty"`
	// Warnings are problems that do not stop routing (unknown labels,
	// label-declared settings overruled by an older replica).
	Warnings []string `json:"warnings,omitempty"`
}

// Options are the provider's collaborators; the zero value works.
type Options struct {
	// Logger receives discovery logs; nil discards them.
	Logger *slog.Logger
	// Metrics counts events and errors; nil counts nothing.
	Metrics *Metrics
	// Client talks to the engine; nil builds one from Config.Host and the
	// DOCKER_* environment.
	Client client.APIClient
	// OnList, if set, hears how each container list ended: nil when the
	// engine answered it whole, else why not. The provider reads lists
	// with its own requests over Client's connection, not through Client's
	// ContainerList, so a wrapper of Client would not see them.
	OnList func(err error)
}
