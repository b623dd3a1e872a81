package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configure the admin server. The zero value serves an empty
// registry, no services, and is always ready.
type Options struct {
	// Listen is the host:port of the admin listener (admin.listen).
	Listen string
	// Token, when set, is the bearer token the POST endpoints require. When
	// empty, POSTs are accepted only on a loopback listener. SetToken
	// changes it later.
	Token string
	// Gatherer serves /metrics, with Streamers; both nil serve a Collector
	// over Services alone. cmd/ passes its own registry.
	Gatherer prometheus.Gatherer
	// Streamers are the families with a series per backend or per service
	// (NewCollector, the data path's metrics, among others). They are not
	// registered on Gatherer: /metrics writes them a series at a time (see
	// Streamer).
	Streamers []Streamer
	// Services lists the running services; nil means none.
	Services Services
	// Rejections, when set, is read at each history sample for the
	// services' refused connections and dropped datagrams, which count in
	// their errors/s. nil counts failed dials only.
	Rejections Rejections
	// Explain lists the containers discovery has seen; nil serves [].
	Explain func() []Explanation
	// Ready answers /readyz: false with the reason while starting or
	// draining (503); true with a note of what is degraded but still
	// serves, or "" (200, the note on the line after "ready"). nil is
	// always ready.
	Ready func() (ok bool, why string)
	// Logger receives request errors; nil discards.
	Logger *slog.Logger
	// Pprof serves net/http/pprof under /debug/pprof/ (admin.pprof).
	Pprof bool
	// ReadTimeout bounds reading a request, body included; WriteTimeout
	// writing its answer; IdleTimeout a keep-alive connection waiting for
	// its next request. Zero takes the defaults: 10 s, 60 s and 2 min.
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
}

// shutdownGrace bounds how long Run waits for in-flight requests (a running
// pprof profile, a slow scrape) before closing them.
const shutdownGrace = 5 * time.Second

// Server is the admin HTTP server.
type Server struct {
	opts     Options
	log      *slog.Logger
	gatherer prometheus.Gatherer
	handler  http.Handler
	metrics  http.Handler
	history  *History

	token atomic.Pointer[string] // Options.Token, then SetToken's

	mu sync.Mutex
	ln net.Listener
}

// New returns a server; call Listen (optional) and Run.
func New(opts Options) *Server {
	s := &Server{opts: opts, log: opts.Logger, gatherer: opts.Gatherer}
	s.token.Store(&opts.Token)
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.gatherer == nil {
		s.gatherer = prometheus.NewRegistry()
		if opts.Streamers == nil {
			s.opts.Streamers = []Streamer{NewCollector(opts.Services)}
		}
	}
	s.history = newHistory(opts.Services, opts.Rejections, s.log)
	s.metrics = newMetricsHandler(s.gatherer, s.opts.Streamers, promLogger{s.log})
	s.handler = s.routes()
	return s
}

// SetToken replaces the bearer token (a reload rotating admin.token); ""
// turns token checks off, leaving POSTs to loopback listeners only.
// Requests from then on are checked against the new token.
func (s *Server) SetToken(token string) { s.token.Store(&token) }

// Token returns the bearer token in force.
func (s *Server) Token() string { return *s.token.Load() }

// Handler returns the server's HTTP handler, for embedding or tests.
func (s *Server) Handler() http.Handler { return s.handler }

// Listen binds the admin listener now, so cmd/ can report a bind error before
// starting anything else. Run calls it when it was not called.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	// Plain TCP, as the data path's listeners: a successor takes the
	// admin listener with theirs (package handover), and a Multipath TCP
	// socket is none of the kinds it hands over.
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), "tcp", s.opts.Listen)
	if err != nil {
		return fmt.Errorf("admin listen %s: %w", s.opts.Listen, err)
	}
	s.ln = ln
	return nil
}

// Use makes the server serve on ln, a listener bound elsewhere (one a
// predecessor handed over), instead of binding Options.Listen.
func (s *Server) Use(ln net.Listener) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return fmt.Errorf("admin: already listening on %s", s.ln.Addr())
	}
	s.ln = ln
	return nil
}

// File returns a duplicate of the bound listener, for a successor to take
// over; the caller closes it.
func (s *Server) File() (*os.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ln, ok := s.ln.(interface{ File() (*os.File, error) })
	if !ok {
		return nil, fmt.Errorf("admin: no listener to hand over")
	}
	return ln.File()
}

// Addr returns the bound address, nil before Listen.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Close releases the listener bound by Listen when Run will not be called
// (a later start-up step failed). A running server stops with Run's context.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	err := s.ln.Close()
	s.ln = nil
	return err
}

// Run serves until ctx is done, then shuts down: in-flight requests get
// shutdownGrace, then their connections are closed. It returns nil after a
// shutdown caused by ctx. The rates' history is sampled while it runs.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	hctx, stopHistory := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		s.history.Run(hctx)
	}()
	defer func() {
		stopHistory()
		<-sampled
	}()
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()

	srv := &http.Server{
		Handler:      s.handler,
		ReadTimeout:  orDefault(s.opts.ReadTimeout, defaultReadTimeout),
		WriteTimeout: orDefault(s.opts.WriteTimeout, defaultWriteTimeout),
		IdleTimeout:  orDefault(s.opts.IdleTimeout, defaultIdleTimeout),
		ErrorLog:     slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:  func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("admin listening", "addr", ln.Addr().String())

	select {
	case err := <-errc:
		return fmt.Errorf("admin serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		s.log.Warn("admin shutdown: closing open requests", "err", err)
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin serve %s: %w", ln.Addr(), err)
	}
	return nil
}

// routes builds the mux. Method-qualified patterns give 405 with an Allow
// header for the wrong method; cross-origin browser POSTs are refused so a
// web page cannot drive a token-less loopback admin API.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.page)
	mux.Handle("GET /metrics", s.metrics)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /api/v1/services", s.services)
	mux.HandleFunc("GET /api/v1/explain", s.explain)
	const backend = "/api/v1/services/{service}/backends/{backend}/"
	for _, a := range actions {
		mux.Handle("POST "+backend+a.name, s.guard(s.action(a)))
	}
	mux.Handle("POST "+backend+"{action}", s.guard(http.HandlerFunc(unknownAction)))
	if s.opts.Pprof {
		mountPprof(mux)
	}
	return s.limitBody(http.NewCrossOriginProtection().Handler(mux))
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if s.opts.Ready == nil {
		io.WriteString(w, "ready\n")
		return
	}
	ok, why := s.opts.Ready()
	switch {
	case !ok:
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, why+"\n")
	case why != "":
		io.WriteString(w, "ready\n"+why+"\n")
	default:
		io.WriteString(w, "ready\n")
	}
}

// promLogger routes promhttp's gather errors to slog.
type promLogger struct{ log *slog.Logger }

func (l promLogger) Println(v ...any) { l.log.Warn("metrics: " + fmt.Sprint(v...)) }

// mountPprof serves the standard profiles on mux rather than on
// http.DefaultServeMux, so they exist only on the admin listener and only
// when admin.pprof is on.
func mountPprof(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}
