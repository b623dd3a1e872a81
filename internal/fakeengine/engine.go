package fakeengine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"
)

// The engine's identity, as an API 1.41 daemon (Docker 20.10) reports it:
// the version tierlb negotiates down to on this project's machines.
const (
	APIVersion    = "1.41"
	MinAPIVersion = "1.12"
	engineVersion = "20.10.24"
)

// Network is the one bridge network every container is attached to.
const (
	NetworkName = "fakenet"
	networkID   = "f4ce0000000000000000000000000000000000000000000000000000000000e7"
)

// Options configure an Engine; the zero value works.
type Options struct {
	// Port is the port every container exposes (its tierlb.port label is
	// the caller's business); 0 exposes none.
	Port int
	// Swarm makes the engine an active Swarm manager (see swarm.go) with
	// Nodes nodes (1 when 0): node-1 is the manager, the rest workers.
	Swarm bool
	Nodes int
}

// Container is the engine's record of one container. The engine owns it:
// read it through Container, which returns a copy.
type Container struct {
	ID      string
	Name    string // without the leading slash
	Labels  map[string]string
	IP      netip.Addr
	Created time.Time
	// Running is true from start to die.
	Running    bool
	StartedAt  time.Time
	FinishedAt time.Time
	ExitCode   int
	// Overlay is set once ConnectOverlay attached it to the Swarm overlay.
	Overlay bool
}

// Engine is a Docker engine in memory; see the package doc.
type Engine struct {
	opts Options

	mu       sync.Mutex // guards the fields below
	ctrs     map[string]*Container
	byName   map[string]string // name → ID
	order    []string          // IDs in creation order, for stable lists
	nextIP   uint32
	requests map[string]int
	bytes    map[string]int64 // response bytes by endpoint
	created  time.Time

	// Swarm: see swarm.go.
	nodes     []*Node
	services  map[string]*Service
	svcOrder  []string
	tasks     map[string]*Task
	taskOrder []string
	taskSeq   int
	placed    int
	version   uint64

	pub pubsub

	srv *http.Server
	ln  net.Listener
}

// New makes an engine with no containers.
func New(opts Options) *Engine {
	e := &Engine{
		opts:     opts,
		ctrs:     map[string]*Container{},
		byName:   map[string]string{},
		requests: map[string]int{},
		bytes:    map[string]int64{},
		created:  time.Now().UTC(),
	}
	if opts.Swarm {
		e.initSwarm()
	}
	e.pub.init()
	e.srv = &http.Server{Handler: http.HandlerFunc(e.serveHTTP), ReadHeaderTimeout: 10 * time.Second}
	return e
}

// Listen binds the engine's unix socket at path and returns the address a
// client takes ("unix://" + path).
func (e *Engine) Listen(path string) (string, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("fake engine socket %s: %w", path, err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return "", fmt.Errorf("fake engine socket: %w", err)
	}
	e.ln = ln
	return "unix://" + path, nil
}

// Serve answers API requests until ctx ends, then closes the socket and
// every open event stream. Listen must have succeeded.
func (e *Engine) Serve(ctx context.Context) error {
	if e.ln == nil {
		return errors.New("fake engine: Serve before Listen")
	}
	stop := context.AfterFunc(ctx, func() { e.srv.Close() })
	defer stop()
	if err := e.srv.Serve(e.ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("fake engine: %w", err)
	}
	return nil
}

// Requests returns how many requests each endpoint served, keyed like
// "GET /containers/{id}/json".
func (e *Engine) Requests() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int, len(e.requests))
	for k, v := range e.requests {
		out[k] = v
	}
	return out
}

// ResponseBytes returns how many bytes of response bodies each endpoint
// sent, keyed as Requests.
func (e *Engine) ResponseBytes() map[string]int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int64, len(e.bytes))
	for k, v := range e.bytes {
		out[k] = v
	}
	return out
}

// Dropped is how many events a subscriber missed because it read too
// slowly (as the daemon, the engine gives a subscriber 100ms).
func (e *Engine) Dropped() int64 { return e.pub.dropped.Load() }

// Container returns a copy of a container's record, by ID or name.
func (e *Engine) Container(ref string) (Container, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.lookup(ref)
	if c == nil {
		return Container{}, false
	}
	return *c, true
}

// IDs returns the containers' IDs in creation order; running only, unless
// all.
func (e *Engine) IDs(all bool) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, 0, len(e.order))
	for _, id := range e.order {
		if all || e.ctrs[id].Running {
			out = append(out, id)
		}
	}
	return out
}

// lookup finds a container as the daemon does: full ID, name, then a
// unique ID prefix. e.mu is held.
func (e *Engine) lookup(ref string) *Container {
	if c := e.ctrs[ref]; c != nil {
		return c
	}
	if id, ok := e.byName[strings.TrimPrefix(ref, "/")]; ok {
		return e.ctrs[id]
	}
	if ref == "" {
		return nil
	}
	var found *Container
	for id, c := range e.ctrs {
		if strings.HasPrefix(id, ref) {
			if found != nil {
				return nil // ambiguous
			}
			found = c
		}
	}
	return found
}

// containerID derives a 64-hex ID from the name, so that runs are
// reproducible.
func containerID(name string) string {
	sum := sha256.Sum256([]byte("fakeengine/" + name))
	return hex.EncodeToString(sum[:])
}

// loopbackAddr is the n-th container address: 127.1.0.1, 127.1.0.2, ...
// 16 million of them, all on the loopback interface.
func loopbackAddr(n uint32) netip.Addr {
	n++
	return netip.AddrFrom4([4]byte{127, byte(1 + n>>16), byte(n >> 8), byte(n)})
}
