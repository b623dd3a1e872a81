package admin

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// What one client may cost the admin server. The API is small and local,
// so the bounds are generous for a real client and short for one that
// holds a connection or a goroutine without finishing its request.
const (
	// defaultReadTimeout bounds reading a request, headers and body.
	defaultReadTimeout = 10 * time.Second
	// defaultWriteTimeout bounds writing an answer. It is above the 30 s
	// of a default CPU profile (pprof refuses a profile longer than it).
	defaultWriteTimeout = 60 * time.Second
	// defaultIdleTimeout closes a keep-alive connection with no request.
	defaultIdleTimeout = 2 * time.Minute
	// MaxBodyBytes bounds a request body. No endpoint takes a body (the
	// POST actions carry everything in their path); the limit leaves room
	// for a client that sends an empty JSON object or a form anyway.
	MaxBodyBytes = 64 << 10
)

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// limitBody answers 413 to a request whose body is over MaxBodyBytes and
// otherwise reads the body in full before the handler runs. No handler reads
// a body, so without this an action would run on a request still arriving;
// with it a client that sends its body slowly is cut by the read timeout
// before anything happens.
func (s *Server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > MaxBodyBytes {
			s.bodyTooLarge(w)
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			_, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, MaxBodyBytes))
			var tooLarge *http.MaxBytesError
			switch {
			case errors.As(err, &tooLarge):
				s.bodyTooLarge(w)
				return
			case err != nil:
				// Cut by the read timeout or by the client: the connection
				// closes after this answer, if it still arrives.
				w.Header().Set("Connection", "close")
				s.writeError(w, http.StatusRequestTimeout, fmt.Errorf("request body: %w", err))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) bodyTooLarge(w http.ResponseWriter) {
	// The rest of the body is not read: the connection cannot be reused.
	w.Header().Set("Connection", "close")
	s.writeError(w, http.StatusRequestEntityTooLarge,
		fmt.Errorf("request body over %d bytes; the admin API takes no body", MaxBodyBytes))
}
