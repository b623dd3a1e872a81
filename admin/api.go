package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"

	"github.com/tierlb/tierlb/backends"
)

// services answers GET /api/v1/services: a JSON array of ServiceStatus,
// filtered by ?service=, ?state= and ?backend=.
func (s *Server) services(w http.ResponseWriter, r *http.Request) {
	f, err := parseFilter(r.URL.Query(), paramService, paramState, paramBackend)
	if err != nil {
		s.writeError(w, http.StatusBadRequest, err)
		return
	}
	arr := jsonArray[ServiceStatus]{w: w}
	_, err = eachService(s.opts.Services, s.history, f, 0, math.MaxInt, arr.add)
	if err != nil && !arr.started {
		s.writeError(w, http.StatusNotFound, err)
		return
	}
	if err == nil {
		err = arr.close()
	}
	if err != nil {
		s.log.Debug("admin: write response", "err", err)
	}
}

// jsonArray writes a JSON array element by element, byte for byte as
// writeJSON writes the whole slice, so that a response never holds more
// than one element's JSON. The status and headers go out with the first
// element, or with the empty array at close.
type jsonArray[T any] struct {
	w       http.ResponseWriter
	started bool
}

func (a *jsonArray[T]) add(v T) error {
	body, err := json.MarshalIndent(v, "  ", "  ")
	if err != nil {
		return err
	}
	sep := ",\n  "
	if !a.started {
		a.started, sep = true, "[\n  "
		setJSONHeaders(a.w)
		a.w.WriteHeader(http.StatusOK)
	}
	if _, err := io.WriteString(a.w, sep); err != nil {
		return err
	}
	_, err = a.w.Write(body)
	return err
}

func (a *jsonArray[T]) close() error {
	if !a.started {
		setJSONHeaders(a.w)
		a.w.WriteHeader(http.StatusOK)
		_, err := io.WriteString(a.w, "[]\n")
		return err
	}
	_, err := io.WriteString(a.w, "\n]\n")
	return err
}

func setJSONHeaders(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
}

// explain answers GET /api/v1/explain: a JSON array of Explanation.
func (s *Server) explain(w http.ResponseWriter, r *http.Request) {
	list := []Explanation{}
	if s.opts.Explain != nil {
		if e := s.opts.Explain(); e != nil {
			list = e
		}
	}
	s.writeJSON(w, http.StatusOK, list)
}

// action is one runtime state change, named by the last URL segment.
type action struct {
	name  string
	state backends.State
}

// actions are the POST endpoints: "ready" clears an operator override.
var actions = [...]action{
	{"drain", backends.StateDraining},
	{"ready", backends.StateUp},
	{"maint", backends.StateMaint},
}

// action applies a to the backend in the URL and answers with its new status.
func (s *Server) action(a action) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		svcName, id := r.PathValue("service"), r.PathValue("backend")
		b, err := s.findBackend(svcName, id)
		if err != nil {
			s.writeError(w, http.StatusNotFound, err)
			return
		}
		b.SetAdminState(a.state)
		st, reason := b.State()
		s.log.Info("backend state set by operator", "service", svcName, "backend", id,
			"action", a.name, "state", st.String(), "reason", reason, "remote", r.RemoteAddr)
		s.writeJSON(w, http.StatusOK, backendStatus(b))
	})
}

// findBackend looks the backend up in the current service list.
func (s *Server) findBackend(service, id string) (*backends.Backend, error) {
	for _, info := range list(s.opts.Services) {
		if info.Name != service {
			continue
		}
		if info.Set != nil {
			if b := info.Set.Backend(id); b != nil {
				return b, nil
			}
		}
		return nil, fmt.Errorf("backend %q not found in service %q", id, service)
	}
	return nil, fmt.Errorf("service %q not found", service)
}

func unknownAction(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusNotFound, apiError{
		Error: fmt.Sprintf("unknown action %q (want drain, ready or maint)", r.PathValue("action")),
	})
}

// apiError is the body of every API error.
type apiError struct {
	Error string `json:"error"`
}

func (s *Server) writeError(w http.ResponseWriter, code int, err error) {
	s.writeJSON(w, code, apiError{Error: err.Error()})
}

func (s *Server) writeJSON(w http.ResponseWriter, code int, v any) {
	if err := writeJSON(w, code, v); err != nil {
		s.log.Debug("admin: write response", "err", err)
	}
}

// writeJSON writes v indented, so curl output reads well; the CLI's --json
// passes it through as is.
func writeJSON(w http.ResponseWriter, code int, v any) error {
	body, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, fmt.Sprintf("encode response: %v", err), http.StatusInternalServerError)
		return err
	}
	setJSONHeaders(w)
	w.WriteHeader(code)
	_, err = w.Write(append(body, '\n'))
	return err
}
