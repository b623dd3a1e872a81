package handover

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Listeners is what a process hands over: its listening sockets.
type Listeners interface {
	// Files returns a duplicate of every listening socket, which the
	// server closes once sent; the originals stay with the data path.
	Files() ([]*os.File, error)
	// StopAccepting stops accepting on every listening socket without
	// closing it (its queue is the successor's now) and returns once no
	// loop accepts any more. Open connections go on; draining them is
	// the caller's, once HandedOver is closed.
	StopAccepting(ctx context.Context) error
}

// Options are the settings both sides share; the zero value works.
type Options struct {
	Logger *slog.Logger // nil: discard
	// Timeout bounds each step of the exchange; 0 means 10s.
	Timeout time.Duration
	// ReadyTimeout bounds how long the old process waits for the
	// successor's ready once the sockets are sent; 0 means 30s. Past it,
	// the successor is taken for dead and the old process goes on.
	ReadyTimeout time.Duration
	// Version is this tierlb's version, shown in the peer's logs.
	Version string
}

func (o *Options) timeout() time.Duration {
	if o.Timeout > 0 {
		return o.Timeout
	}
	return 10 * time.Second
}

func (o *Options) readyTimeout() time.Duration {
	if o.ReadyTimeout > 0 {
		return o.ReadyTimeout
	}
	return 30 * time.Second
}

func (o *Options) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Successor is the process that took the sockets over.
type Successor struct {
	PID     int
	Version string
}

// Server serves a process's listening sockets to its successor.
type Server struct {
	sf   *socketFile
	lis  Listeners
	opts Options
	log  *slog.Logger

	busy       atomic.Bool
	handedOver atomic.Bool
	done       chan struct{}
	successor  Successor
	conns      sync.WaitGroup
	closeOnce  sync.Once
	closeErr   error
}

// Listen binds the hand-over socket beside path (not yet reachable
// there); Publish makes it the path. A process without a predecessor
// publishes at once; a successor after its predecessor's ack.
func Listen(path string, lis Listeners, opts Options) (*Server, error) {
	sf, err := bindAside(path)
	if err != nil {
		return nil, err
	}
	return &Server{sf: sf, lis: lis, opts: opts, log: opts.logger(), done: make(chan struct{})}, nil
}

// Publish renames the socket over the path: from now on a successor
// reaches this process.
func (s *Server) Publish() error { return s.sf.publish() }

// Path is the socket path.
func (s *Server) Path() string { return s.sf.path }

// HandedOver is closed once a successor accepts on the sockets and this
// process has stopped accepting on them.
func (s *Server) HandedOver() <-chan struct{} { return s.done }

// Successor is the process that took over; valid once HandedOver is closed.
func (s *Server) Successor() Successor {
	<-s.done
	return s.successor
}

// Run answers successors until ctx is done, then closes the socket (and
// removes the path if it still names it). After a hand-over it goes on
// answering "handed over", so that another successor retries at the path.
func (s *Server) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	var err error
	for {
		c, aerr := s.sf.ln.AcceptUnix()
		if aerr != nil {
			if ctx.Err() == nil && !errors.Is(aerr, net.ErrClosed) {
				err = fmt.Errorf("hand-over socket %s: %w", s.sf.path, aerr)
			}
			break
		}
		s.conns.Add(1)
		go func() {
			defer s.conns.Done()
			s.serve(ctx, c)
		}()
	}
	s.Close()
	s.conns.Wait()
	return err
}

// Close stops answering; Run returns. The path is removed if it still
// names this process's socket, unless a successor took over: the
// successor renames its own over the path right after the ack, and a
// check-then-remove here could remove the successor's.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.sf.close(!s.handedOver.Load()) })
	return s.closeErr
}

// serve runs one successor's exchange.
func (s *Server) serve(ctx context.Context, c *net.UnixConn) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	step := s.opts.timeout()
	p := &peer{c: c, deadline: func() time.Time { return time.Now().Add(step) }}
	refuse := func(code, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		_ = p.send(msgError, errorBody{Code: code, Error: msg}, nil)
	}
	// The hello is read before any refusal: closing a unix socket with
	// unread data resets the peer before it can read why.
	var hello helloBody
	if err := s.recvBody(p, msgHello, &hello); err != nil {
		s.log.Warn("hand-over: bad hello from a successor", "error", err)
		refuse(codeProtocol, "%v", err)
		return
	}
	if uid, err := peerUID(c); err != nil || (uid != os.Geteuid() && uid != 0) {
		s.log.Warn("hand-over socket: refused a peer of another user", "peer_uid", uid, "error", err)
		refuse(codeRefused, "uid %d may not take this process's sockets (it runs as uid %d)", uid, os.Geteuid())
		return
	}
	if s.handedOver.Load() {
		refuse(codeHandedOver, "sockets already handed over to pid %d", s.successor.PID)
		return
	}
	if !s.busy.CompareAndSwap(false, true) {
		refuse(codeBusy, "a hand-over to another successor is in progress")
		return
	}
	defer func() {
		if !s.handedOver.Load() {
			s.busy.Store(false)
		}
	}()
	log := s.log.With("successor_pid", hello.PID, "successor_version", hello.Version)
	n, err := s.sendSockets(p)
	if err != nil {
		log.Error("hand-over: sending the listening sockets failed; still serving", "error", err)
		refuse(codeProtocol, "%v", err)
		return
	}
	log.Info("hand-over: listening sockets sent; waiting for the successor to accept", "sockets", n)

	wait := s.opts.readyTimeout()
	p.deadline = func() time.Time { return time.Now().Add(wait) }
	if err := s.recvBody(p, msgReady, &emptyBody{}); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, net.ErrClosed) {
			log.Warn("hand-over: the successor went away before it accepted; still serving", "error", err)
		} else {
			log.Warn("hand-over: bad ready from the successor; still serving", "error", err)
			refuse(codeProtocol, "%v", err)
		}
		return
	}
	s.successor = Successor{PID: hello.PID, Version: hello.Version}
	s.handedOver.Store(true)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), step)
	err = s.lis.StopAccepting(sctx)
	cancel()
	if err != nil {
		log.Error("hand-over: stop accepting", "error", err)
	}
	p.deadline = func() time.Time { return time.Now().Add(step) }
	if err := p.send(msgAck, emptyBody{}, nil); err != nil {
		log.Warn("hand-over: the successor went away right after it said it accepts", "error", err)
	}
	log.Info("hand-over: the successor accepts; stopped accepting")
	close(s.done)
}

// recvBody reads the next message, which must carry no descriptors.
func (s *Server) recvBody(p *peer, want msgType, v any) error {
	m, files, err := p.recv()
	if err != nil {
		return err
	}
	if len(files) > 0 {
		closeFiles(files)
		return fmt.Errorf("%w: %s message carries descriptors", ErrProtocol, m.typ)
	}
	return decodeBody(m, want, v)
}

// sendSockets sends the offer and the sockets in batches, and closes the
// duplicates Files gave.
func (s *Server) sendSockets(p *peer) (int, error) {
	files, err := s.lis.Files()
	if err != nil {
		return 0, fmt.Errorf("listening sockets: %w", err)
	}
	defer closeFiles(files)
	fds := make([]int, 0, len(files))
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	descs := make([]Desc, 0, len(files))
	seen := map[[2]uint64]bool{}
	for _, f := range files {
		fd, err := rawDup(f)
		if err != nil {
			return 0, fmt.Errorf("listening socket %s: %w", f.Name(), err)
		}
		key, err := socketKey(fd)
		if err != nil || seen[key] {
			unix.Close(fd) // a second descriptor of the same kernel socket
			if err != nil {
				return 0, err
			}
			continue
		}
		seen[key] = true
		d, err := describe(fd)
		if err != nil {
			unix.Close(fd)
			return 0, fmt.Errorf("listening socket %s: %w", f.Name(), err)
		}
		fds, descs = append(fds, fd), append(descs, d)
	}
	if len(fds) > MaxSockets {
		return 0, fmt.Errorf("%d listening sockets, more than one hand-over carries (%d)", len(fds), MaxSockets)
	}
	if err := p.send(msgOffer, offerBody{PID: os.Getpid(), Version: s.opts.Version, Sockets: len(fds)}, nil); err != nil {
		return 0, err
	}
	for i := 0; i < len(fds); i += maxFDsPerMessage {
		j := min(i+maxFDsPerMessage, len(fds))
		if err := p.send(msgSockets, socketsBody{Sockets: descs[i:j]}, fds[i:j]); err != nil {
			return 0, err
		}
	}
	return len(fds), nil
}
