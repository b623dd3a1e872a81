package fakeengine

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/system"
)

// versionPrefix is the /v1.41 a negotiated client puts before every path.
var versionPrefix = regexp.MustCompile(`^/v([0-9]+\.[0-9]+)(/.*)$`)

// serveHTTP checks the API version as the daemon does, counts the request
// under its endpoint and routes it.
func (e *Engine) serveHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if m := versionPrefix.FindStringSubmatch(path); m != nil {
		switch {
		case versionLess(APIVersion, m[1]):
			e.count(r.Method, "bad version")
			writeError(w, http.StatusBadRequest, fmt.Sprintf("client version %s is too new. Maximum supported API version is %s", m[1], APIVersion))
			return
		case versionLess(m[1], MinAPIVersion):
			e.count(r.Method, "bad version")
			writeError(w, http.StatusBadRequest, fmt.Sprintf("client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version", m[1], MinAPIVersion))
			return
		}
		path = m[2]
	}
	w.Header().Set("Api-Version", APIVersion)
	w.Header().Set("Docker-Experimental", "false")
	w.Header().Set("Ostype", "linux")
	w.Header().Set("Server", "Docker/"+engineVersion+" (linux)")

	endpoint, id := route(r.Method, path)
	e.count(r.Method, endpoint)
	cw := &countingWriter{ResponseWriter: w}
	defer func() { e.countBytes(r.Method, endpoint, cw.n) }()
	w = cw
	switch endpoint {
	case "/_ping":
		w.Header().Set("Swarm", "inactive")
		if e.opts.Swarm {
			w.Header().Set("Swarm", "active/manager")
		}
		w.Header().Set("Cache-Control", "no-cache, no-store, must-revalidate")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if r.Method == http.MethodGet {
			_, _ = w.Write([]byte("OK"))
		}
	case "/version":
		writeJSON(w, system.VersionResponse{Version: engineVersion, APIVersion: APIVersion, MinAPIVersion: MinAPIVersion,
			Os: "linux", Arch: runtime.GOARCH, GoVersion: "go1.20.2", KernelVersion: "6.1.0"})
	case "/info":
		writeJSON(w, e.info())
	case "/containers/json":
		e.serveList(w, r)
	case "/containers/{id}/json":
		e.serveInspect(w, id)
	case "/networks":
		e.serveNetworks(w, r)
	case "/events":
		e.serveEvents(w, r)
	case "/services", "/tasks", "/nodes", "/services/{id}", "/tasks/{id}", "/nodes/{id}":
		if e.opts.Swarm {
			e.serveSwarm(w, r, endpoint, id)
			return
		}
		writeError(w, http.StatusServiceUnavailable, `This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.`)
	default:
		writeError(w, http.StatusNotFound, "page not found")
	}
}

// route names the endpoint a path belongs to, and the {id} in it.
func route(method, path string) (endpoint, id string) {
	if method != http.MethodGet && !(method == http.MethodHead && path == "/_ping") {
		return "unsupported", ""
	}
	switch path {
	case "/_ping", "/version", "/info", "/containers/json", "/networks", "/events", "/services", "/tasks", "/nodes":
		return path, ""
	}
	if rest, ok := strings.CutPrefix(path, "/containers/"); ok {
		if id, ok := strings.CutSuffix(rest, "/json"); ok && id != "" && !strings.Contains(id, "/") {
			return "/containers/{id}/json", id
		}
	}
	for _, p := range []string{"/services/", "/tasks/", "/nodes/"} {
		if id, ok := strings.CutPrefix(path, p); ok && id != "" && !strings.Contains(id, "/") {
			return p + "{id}", id
		}
	}
	return "unknown", ""
}

func (e *Engine) count(method, endpoint string) {
	e.mu.Lock()
	e.requests[method+" "+endpoint]++
	e.mu.Unlock()
}

func (e *Engine) countBytes(method, endpoint string, n int64) {
	e.mu.Lock()
	e.bytes[method+" "+endpoint] += n
	e.mu.Unlock()
}

// countingWriter counts a response's body bytes; it flushes, for the
// event stream.
type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (w *countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

func (w *countingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (e *Engine) info() system.Info {
	e.mu.Lock()
	defer e.mu.Unlock()
	in := system.Info{ID: "FAKE:ENGINE", Name: "fakeengine", ServerVersion: engineVersion, OSType: "linux",
		OperatingSystem: "fakeengine", Architecture: runtime.GOARCH, Driver: "overlay2", NCPU: runtime.NumCPU(),
		SystemTime: time.Now().Format(time.RFC3339Nano), LoggingDriver: "json-file", CgroupDriver: "systemd",
		CgroupVersion: "2", Swarm: e.swarmInfo()}
	for _, c := range e.ctrs {
		in.Containers++
		if c.Running {
			in.ContainersRunning++
		} else {
			in.ContainersStopped++
		}
	}
	return in
}

func (e *Engine) serveList(w http.ResponseWriter, r *http.Request) {
	args, err := parseFilters(r.URL.Query().Get("filters"))
	if err == nil {
		err = args.only("label", "status", "id", "name", "network")
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	all, _ := strconv.ParseBool(r.URL.Query().Get("all"))
	e.mu.Lock()
	out := make([]container.Summary, 0, len(e.order))
	for _, id := range e.order {
		c := e.ctrs[id]
		state := "exited"
		if c.Running {
			state = "running"
		}
		switch {
		case !all && !c.Running && len(args["status"]) == 0,
			!args.anyOf("status", state),
			!args.matchLabels(c.Labels),
			!args.anyOf("network", NetworkName, networkID) && c.Running:
			continue
		}
		if vals, ok := args["id"]; ok && !containsPrefix(vals, c.ID) {
			continue
		}
		if vals, ok := args["name"]; ok && !containsSubstring(vals, c.Name) {
			continue
		}
		out = append(out, e.summary(c))
	}
	e.mu.Unlock()
	writeJSON(w, out)
}

func containsPrefix(prefixes []string, s string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// containsSubstring is the daemon's name filter: a regular expression, here
// read literally, found anywhere in the name.
func containsSubstring(subs []string, s string) bool {
	for _, p := range subs {
		if strings.Contains(s, strings.TrimPrefix(p, "/")) {
			return true
		}
	}
	return false
}

func (e *Engine) serveInspect(w http.ResponseWriter, ref string) {
	e.mu.Lock()
	c := e.lookup(ref)
	var res container.InspectResponse
	if c != nil {
		res = e.inspect(c)
	}
	e.mu.Unlock()
	if c == nil {
		writeError(w, http.StatusNotFound, "No such container: "+ref)
		return
	}
	writeJSON(w, res)
}

func (e *Engine) serveNetworks(w http.ResponseWriter, r *http.Request) {
	args, err := parseFilters(r.URL.Query().Get("filters"))
	if err == nil {
		err = args.only("driver", "name", "id", "type", "scope", "label")
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	nets := []network.Summary{
		{Network: network.Network{Name: NetworkName, ID: networkID, Scope: "local", Driver: "bridge"}},
		{Network: network.Network{Name: "host", ID: strings.Repeat("0", 63) + "1", Scope: "local", Driver: "host"}},
		{Network: network.Network{Name: "none", ID: strings.Repeat("0", 63) + "2", Scope: "local", Driver: "null"}},
	}
	if e.opts.Swarm {
		nets = append(nets, network.Summary{Network: network.Network{Name: OverlayName, ID: overlayID, Scope: "swarm", Driver: "overlay", Attachable: true}})
	}
	out := []network.Summary{}
	for _, n := range nets {
		if args.anyOf("driver", n.Driver) && args.anyOf("name", n.Name) && (len(args["id"]) == 0 || containsPrefix(args["id"], n.ID)) &&
			args.anyOf("scope", n.Scope) && args.matchLabels(n.Labels) {
			out = append(out, n)
		}
	}
	writeJSON(w, out)
}

// versionLess compares "1.41"-style versions numerically.
func versionLess(a, b string) bool {
	am, an, _ := strings.Cut(a, ".")
	bm, bn, _ := strings.Cut(b, ".")
	ai, _ := strconv.Atoi(am)
	bi, _ := strconv.Atoi(bm)
	if ai != bi {
		return ai < bi
	}
	aj, _ := strconv.Atoi(an)
	bj, _ := strconv.Atoi(bn)
	return aj < bj
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
}
