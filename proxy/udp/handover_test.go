//go:build linux

package udp

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tierlb/tierlb/backends"
	"github.com/tierlb/tierlb/internal/testkit"
)

// heldBackend answers each datagram with "held DATAGRAM", but only once
// release is closed: a reply that arrives after the hand-over.
func heldBackend(t *testing.T, release <-chan struct{}) string {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1<<16)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			msg := "held " + string(buf[:n])
			go func() {
				<-release
				_, _ = c.WriteToUDPAddrPort([]byte(msg), from)
			}()
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return c.LocalAddr().String()
}

// TestHandOverSockets: a successor service takes the sockets (two, one
// per loop) with Files and ListenFiles; after StopAccepting the old one
// reads nothing more, new clients are the successor's, and a session of
// the old one still gets its backend's late reply through the shared
// socket.
func TestHandOverSockets(t *testing.T) {
	release := make(chan struct{})
	held := heldBackend(t, release)
	set := backends.NewSet("dns", backends.RoundRobin, backends.SetOptions{})
	t.Cleanup(set.Close)
	set.Update([]backends.Spec{{ID: "held", Address: held, Weight: 1}})
	old := serve(t, Config{}, set, 2)
	files, err := old.svc.Files()
	if err != nil || len(files) != 2 {
		t.Fatalf("Files: %d, %v; want one per loop", len(files), err)
	}

	c := dial(t, old.addr())
	if _, err := c.Write([]byte("early")); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, "the old session", func() bool { return old.svc.Active() == 1 })

	next, err := NewService(Config{Name: "dns", Listen: old.addr()}, set, Options{Loops: testLoops(t, 2)})
	if err != nil {
		t.Fatal(err)
	}
	if err := next.ListenFiles(files); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		f.Close()
	}
	if err := next.ListenFiles(files); err == nil || !strings.Contains(err.Error(), "already listening") {
		t.Fatalf("a second ListenFiles: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- next.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-served
		sctx, scancel := context.WithCancel(context.Background())
		scancel()
		_ = next.Shutdown(sctx)
	})
	old.svc.StopAccepting()

	for i := range 4 {
		d := dial(t, old.addr())
		if _, err := d.Write([]byte("after")); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 5*time.Second, "a new client's session in the successor", func() bool { return next.Active() == i+1 })
	}
	if n := old.svc.Active(); n != 1 {
		t.Fatalf("the old service has %d sessions after it stopped accepting, want its 1", n)
	}
	close(release)
	buf := make([]byte, 64)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "held early" {
		t.Fatalf("the old session's late reply: %q, %v", buf[:n], err)
	}
	if ap := netip.MustParseAddrPort(old.addr()); next.Addr().String() != ap.String() {
		t.Fatalf("successor bound %s, want %s", next.Addr(), ap)
	}
}
