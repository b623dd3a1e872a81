package handover

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
)

// ErrNoPredecessor means no process serves the path: it does not exist,
// or nothing listens on it any more (a stale file).
var ErrNoPredecessor = errors.New("no tierlb serves the hand-over socket")

// Socket is one inherited listening socket.
type Socket struct {
	Desc Desc
	// File is the descriptor. Use it through SyscallConn or
	// net.FileListener/FilePacketConn, never File.Fd: that makes the
	// socket blocking, for the predecessor too (the flag is shared).
	File *os.File
}

// Inheritance is what a successor received: the predecessor's sockets,
// until it takes them, and the connection on which it says it accepts.
type Inheritance struct {
	PID     int    // the predecessor's pid (in its own pid namespace)
	Version string // the predecessor's tierlb version

	p       *peer
	mu      sync.Mutex
	all     []Desc
	left    []Socket
	readied bool
}

// Fetch asks the process serving path for its listening sockets. A
// predecessor busy with another successor, or one that has just handed
// over, is asked again (at the path, which then names the other
// successor) until ctx is done.
func Fetch(ctx context.Context, path string, opts Options) (*Inheritance, error) {
	wait := 20 * time.Millisecond
	for {
		in, err := fetch(ctx, path, opts)
		var pe *PeerError
		if err == nil || !errors.As(err, &pe) || !pe.retry() {
			return in, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("hand-over socket %s: %w (gave up: %v)", path, err, context.Cause(ctx))
		case <-t.C:
		}
		wait = min(2*wait, time.Second)
	}
}

func fetch(ctx context.Context, path string, opts Options) (*Inheritance, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unixpacket", path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w (%s: %v)", ErrNoPredecessor, path, err)
		}
		if errors.Is(err, syscall.EPROTOTYPE) {
			return nil, fmt.Errorf("hand-over socket %s is not a tierlb hand-over socket (a stream socket): %w", path, err)
		}
		return nil, fmt.Errorf("hand-over socket: %w", err)
	}
	step := opts.timeout()
	p := &peer{c: c.(*net.UnixConn), deadline: func() time.Time {
		t := time.Now().Add(step)
		if dl, ok := ctx.Deadline(); ok && dl.Before(t) {
			return dl
		}
		return t
	}}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	in, err := receive(p, opts)
	if err != nil {
		if !errors.As(err, new(*PeerError)) {
			_ = p.send(msgError, errorBody{Code: codeProtocol, Error: err.Error()}, nil)
		}
		c.Close()
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", err, context.Cause(ctx))
		}
		return nil, fmt.Errorf("hand-over from %s: %w", path, err)
	}
	return in, nil
}

// receive runs the successor's side up to the sockets.
func receive(p *peer, opts Options) (*Inheritance, error) {
	if err := p.send(msgHello, helloBody{PID: os.Getpid(), Version: opts.Version}, nil); err != nil {
		return nil, err
	}
	var offer offerBody
	m, files, err := p.recv()
	if err != nil {
		return nil, err
	}
	closeFiles(files) // none: decode refuses descriptors on an offer
	if err := decodeBody(m, msgOffer, &offer); err != nil {
		return nil, err
	}
	if offer.Sockets < 0 || offer.Sockets > MaxSockets {
		return nil, fmt.Errorf("%w: offer of %d sockets (0-%d)", ErrProtocol, offer.Sockets, MaxSockets)
	}
	in := &Inheritance{PID: offer.PID, Version: offer.Version, p: p}
	for len(in.left) < offer.Sockets {
		if err := in.receiveBatch(offer.Sockets); err != nil {
			closeSockets(in.left)
			return nil, err
		}
	}
	for _, s := range in.left {
		in.all = append(in.all, s.Desc)
	}
	return in, nil
}

// receiveBatch reads one sockets message and checks each description
// against what the kernel says of the descriptor that came with it.
func (in *Inheritance) receiveBatch(offered int) error {
	m, files, err := in.p.recv()
	if err != nil {
		return err
	}
	var body socketsBody
	if err := decodeBody(m, msgSockets, &body); err != nil {
		closeFiles(files)
		return err
	}
	switch {
	case len(body.Sockets) != len(files):
		closeFiles(files)
		return fmt.Errorf("%w: %d descriptors with %d descriptions", ErrProtocol, len(files), len(body.Sockets))
	case len(files) == 0:
		return fmt.Errorf("%w: a sockets message without sockets", ErrProtocol)
	case len(in.left)+len(files) > offered:
		closeFiles(files)
		return fmt.Errorf("%w: more sockets than the %d offered", ErrProtocol, offered)
	}
	for i, f := range files {
		d := body.Sockets[i]
		err := d.check()
		if err == nil {
			err = checkKernel(f, d)
		}
		if err != nil {
			closeFiles(files[i:])
			return fmt.Errorf("%w: socket %d: %v", ErrProtocol, len(in.left)+1, err)
		}
		in.left = append(in.left, Socket{Desc: d, File: f})
	}
	return nil
}

// checkKernel compares a description with the descriptor's socket.
func checkKernel(f *os.File, d Desc) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var kd Desc
	var kerr error
	if err := rc.Control(func(fd uintptr) { kd, kerr = describe(int(fd)) }); err != nil {
		return err
	}
	if kerr != nil {
		return fmt.Errorf("described as %s: %w", d, kerr)
	}
	if kd != d {
		return fmt.Errorf("described as %s, the kernel says %s", d, kd)
	}
	return nil
}

// Sockets describes every socket received, taken or not.
func (in *Inheritance) Sockets() []Desc { return in.all }

// Take removes and returns up to n sockets that binding network and addr
// would give (Desc.Matches), in the order the predecessor sent them; the
// caller owns them. A UDP address served by several loops has one socket
// per loop, in one SO_REUSEPORT group.
func (in *Inheritance) Take(network string, addr netip.AddrPort, n int) []Socket {
	in.mu.Lock()
	defer in.mu.Unlock()
	var got []Socket
	kept := in.left[:0]
	for _, s := range in.left {
		if len(got) < n && s.Desc.Matches(network, addr) {
			got = append(got, s)
			continue
		}
		kept = append(kept, s)
	}
	clear(in.left[len(kept):])
	in.left = kept
	return got
}

// Ready tells the predecessor that this process accepts on the sockets it
// took, and waits for the predecessor to stop accepting. Sockets not taken
// are closed first: no service of this process wants them, as after a
// reload; their descriptions are returned for the log.
func (in *Inheritance) Ready(ctx context.Context) ([]Desc, error) {
	closed := in.closeLeft()
	in.mu.Lock()
	in.readied = true
	in.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { in.p.c.Close() })
	defer stop()
	defer in.p.c.Close()
	if err := in.p.send(msgReady, emptyBody{}, nil); err != nil {
		return closed, fmt.Errorf("hand-over: tell the predecessor we accept: %w", err)
	}
	m, files, err := in.p.recv()
	if err == nil {
		closeFiles(files)
		err = decodeBody(m, msgAck, &emptyBody{})
	}
	if err != nil {
		return closed, fmt.Errorf("hand-over: the predecessor's ack: %w", err)
	}
	return closed, nil
}

// Close abandons the hand-over before Ready: every socket not taken is
// closed, and the predecessor, seeing the connection end, goes on
// accepting. After Ready it does nothing.
func (in *Inheritance) Close() []Desc {
	in.mu.Lock()
	done := in.readied
	in.mu.Unlock()
	if done {
		return nil
	}
	closed := in.closeLeft()
	in.p.c.Close()
	return closed
}

func (in *Inheritance) closeLeft() []Desc {
	in.mu.Lock()
	defer in.mu.Unlock()
	var ds []Desc
	for _, s := range in.left {
		ds = append(ds, s.Desc)
	}
	closeSockets(in.left)
	in.left = nil
	return ds
}

func closeSockets(ss []Socket) {
	for _, s := range ss {
		s.File.Close()
	}
}
