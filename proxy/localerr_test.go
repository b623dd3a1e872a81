//go:build linux

package proxy

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tierlb/tierlb/backends"
	"github.com/tierlb/tierlb/internal/testkit"
)

// stderrObserver logs every dial outcome the data path reports, so that
// the parent of a child process can read them.
type stderrObserver struct{ log *slog.Logger }

func (o stderrObserver) DialFailed(b *backends.Backend, err error) {
	o.log.Info("observed dial failure", "backend", b.ID(), "err", err)
}
func (o stderrObserver) DialSucceeded(*backends.Backend) {}

// TestLocalErrorIsNotTheBackends runs a service in a child whose
// descriptor limit leaves room for two proxied connections and one
// accepted socket more, so that the backend socket of the third client
// fails with EMFILE. That client must be refused at once, the failure
// counted as tierlb's own (a warning, the local_error rejection), never
// reported against the backend however often it happens; and once a
// descriptor is free, the next client is served.
func TestLocalErrorIsNotTheBackends(t *testing.T) {
	const test = "TestLocalErrorIsNotTheBackends"
	if isChild(test) {
		log := slog.New(slog.NewTextHandler(os.Stderr, nil))
		serveChild("local", Options{Logger: log, Observer: stderrObserver{log}}, func(s *Service) error {
			if err := emfileWarmUp(s); err != nil {
				return err
			}
			limit, err := fdLimit(2*localRoom + 1) // odd: the backend socket runs out, not accept
			if err != nil {
				return err
			}
			return unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: limit, Max: limit})
		})
		return
	}
	be := startBackend(t, echo)
	child := startChild(t, test, be.addr())
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range localRoom {
		c, err := net.Dial("tcp", child.addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		if err := echoOnce(c); err != nil {
			t.Fatalf("a connection within the limit: %v; child log:\n%s", err, child.stop())
		}
	}
	// More refusals than passive checks would need (max_fails: 3) to
	// eject the backend.
	for i := range 5 {
		// The refusal's RST may come before the dial returns.
		began := time.Now()
		c, err := net.DialTimeout("tcp", child.addr, 2*time.Second)
		if err == nil {
			err = echoOnce(c)
			c.Close()
		}
		var ne net.Error
		switch {
		case err == nil:
			t.Fatalf("client %d beyond the limit was served: the child's room is off", i)
		case errors.As(err, &ne) && ne.Timeout():
			t.Fatalf("client %d beyond the limit hung (%v), want it refused at once", i, err)
		}
		if d := time.Since(began); d > time.Second {
			t.Errorf("client %d beyond the limit refused after %s, want at once", i, d)
		}
	}
	held[0].Close()
	held = held[1:]
	if !testkit.Within(5*time.Second, func() bool {
		c, err := net.Dial("tcp", child.addr)
		if err != nil {
			return false
		}
		held = append(held, c)
		return echoOnce(c) == nil
	}) {
		t.Fatalf("no client served once a descriptor was free; child log:\n%s", child.stop())
	}
	log := child.stop()
	if n := strings.Count(log, "observed dial failure"); n > 0 {
		t.Errorf("the backend was blamed for %d local errors; child log:\n%s", n, log)
	}
	if !strings.Contains(log, `msg="out of local resources: refusing clients; backends are not blamed"`) ||
		!strings.Contains(log, `err="socket: too many open files" errno=EMFILE`) {
		t.Errorf("no warning about the local error; child log:\n%s", log)
	}
}

// localRoom is how many proxied connections the child's limit fits.
const localRoom = 2

// echoOnce sends a byte on c and wants it back within two seconds.
func echoOnce(c net.Conn) error {
	c.SetDeadline(time.Now().Add(2 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte("x")); err != nil {
		return err
	}
	_, err := io.ReadFull(c, make([]byte, 1))
	return err
}
