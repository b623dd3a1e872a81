package handover

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// sockPath is a socket path in a fresh directory, short enough for
// sun_path whatever the test's name.
func sockPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "tlbho")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "h.sock")
}

// fakeListeners is a data path's listeners: real sockets, and a record
// of StopAccepting.
type fakeListeners struct {
	mu      sync.Mutex
	files   func() ([]*os.File, error)
	stopped int
}

func (f *fakeListeners) Files() ([]*os.File, error) { return f.files() }

func (f *fakeListeners) StopAccepting(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped++
	return nil
}

func (f *fakeListeners) stops() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stopped
}

// listenersOf hands over duplicates of the given sockets.
func listenersOf(t *testing.T, socks ...interface {
	File() (*os.File, error)
}) *fakeListeners {
	return &fakeListeners{files: func() ([]*os.File, error) {
		var out []*os.File
		for _, s := range socks {
			f, err := s.File()
			if err != nil {
				closeFiles(out)
				return nil, err
			}
			out = append(out, f)
		}
		return out, nil
	}}
}

func tcpListener(t *testing.T, reusePort bool) *net.TCPListener {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if reusePort {
			c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1) })
		}
		return serr
	}}
	lc.SetMultipathTCP(false) // as the data path binds
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.(*net.TCPListener)
}

func udpSocket(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// serve runs a hand-over server at path until the test ends.
func serve(t *testing.T, path string, lis Listeners, opts Options) *Server {
	t.Helper()
	s, err := Listen(path, lis, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s
}

func nonblocking(t *testing.T, rc syscall.Conn) bool {
	t.Helper()
	raw, err := rc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var nb bool
	raw.Control(func(fd uintptr) {
		fl, _ := unix.FcntlInt(fd, unix.F_GETFL, 0)
		nb = fl&unix.O_NONBLOCK != 0
	})
	return nb
}
