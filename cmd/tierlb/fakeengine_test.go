package main

import (
	"encoding/json"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/network"
)

// fakeEngine speaks just enough of the Docker Engine API over HTTP on
// loopback for the provider inside a real tierlb process: ping, container
// list and inspect, bridge networks, and an event stream. Its containers
// sit on one bridge network with the address 127.0.0.1, so tierlb, which
// runs on the host, dials real loopback backends for them.
type fakeEngine struct {
	t   *testing.T
	srv *http.Server
	url string

	mu       sync.Mutex
	requests int
	ctrs     map[string]container.InspectResponse
	gate     chan struct{} // while open, container lists wait
	broken   chan struct{} // non-nil while every request fails
	// breakNext is closed by breakDown to end the streams open then.
	breakNext chan struct{}
	streams   []chan events.Message
}

const fakeNetwork = "fakenet"

func newFakeEngine(t *testing.T) *fakeEngine {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeEngine{t: t, url: "tcp://" + ln.Addr().String(), ctrs: map[string]container.InspectResponse{}}
	f.srv = &http.Server{Handler: http.HandlerFunc(f.serve), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.srv.Serve(ln)
	}()
	t.Cleanup(func() {
		f.srv.Close() // also ends the event streams' requests
		<-done
	})
	return f
}

var apiVersionPrefix = regexp.MustCompile(`^/v[0-9.]+`)

func (f *fakeEngine) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests++
	gate, broken := f.gate, f.broken
	f.mu.Unlock()
	path := apiVersionPrefix.ReplaceAllString(r.URL.Path, "")
	w.Header().Set("Api-Version", "1.41")
	if broken != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		writeJSON(w, map[string]string{"message": "the fake engine is broken"})
		return
	}
	switch {
	case path == "/_ping":
		_, _ = w.Write([]byte("OK"))
	case path == "/events":
		f.events(w, r)
	case path == "/networks":
		writeJSON(w, []network.Summary{{Network: network.Network{ID: "n1", Name: fakeNetwork, Driver: "bridge"}}})
	case path == "/containers/json":
		if gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		f.mu.Lock()
		var out []container.Summary
		for _, id := range slices.Sorted(maps.Keys(f.ctrs)) {
			out = append(out, container.Summary{ID: id, Labels: f.ctrs[id].Config.Labels})
		}
		f.mu.Unlock()
		writeJSON(w, out)
	case strings.HasPrefix(path, "/containers/") && strings.HasSuffix(path, "/json"):
		id := strings.TrimSuffix(strings.TrimPrefix(path, "/containers/"), "/json")
		f.mu.Lock()
		c, ok := f.ctrs[id]
		f.mu.Unlock()
		if !ok {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			writeJSON(w, map[string]string{"message": "No such container: " + id})
			return
		}
		writeJSON(w, c)
	default:
		http.Error(w, `{"message":"not in the fake"}`, http.StatusNotImplemented)
	}
}

// events streams what emit sends until the client goes away or the engine
// breaks.
func (f *fakeEngine) events(w http.ResponseWriter, r *http.Request) {
	ch := make(chan events.Message, 16)
	f.mu.Lock()
	f.streams = append(f.streams, ch)
	broken := f.brokenCh()
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
	enc := json.NewEncoder(w)
	for {
		select {
		case <-r.Context().Done():
			return
		case <-broken:
			return
		case m := <-ch:
			if enc.Encode(m) != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// brokenCh is closed when the engine breaks; f.mu is held.
func (f *fakeEngine) brokenCh() chan struct{} {
	if f.breakNext == nil {
		f.breakNext = make(chan struct{})
	}
	return f.breakNext
}

// breakDown makes the engine fail every request and end its event streams,
// as an engine that is restarting does, until the returned func is called.
func (f *fakeEngine) breakDown() (repair func()) {
	f.mu.Lock()
	ch := f.brokenCh()
	f.broken, f.breakNext = ch, nil
	f.mu.Unlock()
	close(ch)
	return sync.OnceFunc(func() {
		f.mu.Lock()
		f.broken = nil
		f.mu.Unlock()
	})
}

// holdLists makes container lists wait until the returned func is called.
func (f *fakeEngine) holdLists() (release func()) {
	gate := make(chan struct{})
	f.mu.Lock()
	f.gate = gate
	f.mu.Unlock()
	return sync.OnceFunc(func() {
		f.mu.Lock()
		f.gate = nil
		f.mu.Unlock()
		close(gate)
	})
}

// start adds a running container and announces it.
func (f *fakeEngine) start(id, name string, labels map[string]string) {
	f.mu.Lock()
	f.ctrs[id] = container.InspectResponse{
		ID: id, Name: "/" + name, Created: time.Now().UTC().Format(time.RFC3339Nano),
		State:  &container.State{Running: true, Status: "running", StartedAt: time.Now().UTC().Format(time.RFC3339Nano)},
		Config: &container.Config{Labels: labels},
		NetworkSettings: &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{
			fakeNetwork: {NetworkID: "n1", IPAddress: netip.MustParseAddr("127.0.0.1")},
		}},
	}
	f.mu.Unlock()
	f.emit(events.Message{Type: events.ContainerEventType, Action: events.ActionStart, Actor: events.Actor{ID: id, Attributes: labels}})
}

// remove takes a container away as `docker rm -f` does: die, then destroy.
func (f *fakeEngine) remove(id string) {
	f.mu.Lock()
	labels := f.ctrs[id].Config.Labels
	delete(f.ctrs, id)
	f.mu.Unlock()
	for _, a := range []events.Action{events.ActionDie, events.ActionDestroy} {
		f.emit(events.Message{Type: events.ContainerEventType, Action: a, Actor: events.Actor{ID: id, Attributes: labels}})
	}
}

func (f *fakeEngine) emit(m events.Message) {
	m.TimeNano = time.Now().UnixNano()
	m.Time = m.TimeNano / int64(time.Second)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range f.streams {
		select {
		case ch <- m:
		default: // a lagging subscriber misses it, as with the daemon; the test's resync covers it
		}
	}
}

func (f *fakeEngine) requestCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests
}
