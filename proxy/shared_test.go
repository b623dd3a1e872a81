package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/tierlb/tierlb/backends"
	"github.com/tierlb/tierlb/internal/testkit"
	"github.com/tierlb/tierlb/proxy/udp"
)

// threads counts the process's OS threads.
func threads(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// sharedService starts a service in set on 127.0.0.1:0, shut down at the
// end of the test.
func sharedService(t testing.TB, name string, set *Loops, pools Pools) *Service {
	t.Helper()
	s := newTestService(t, Config{Name: name, ZeroCopy: true}, pools, Options{Loops: set})
	serveService(t, s)
	return s
}

// TestSharedLoopsManyServices: 200 services on two loops all serve, and
// the process's thread count does not grow with them; adding and
// removing services, as a reload does, starts no thread either.
func TestSharedLoopsManyServices(t *testing.T) {
	be := startBackend(t, echo)
	pools := staticSet(t, be.addr())
	set := testLoops(t, 2)
	first := sharedService(t, "svc-0", set, pools)
	roundTrip(t, dial(t, first), "warm up")
	before := threads(t)
	svcs := []*Service{first}
	for i := 1; i < 200; i++ {
		svcs = append(svcs, sharedService(t, fmt.Sprintf("svc-%d", i), set, pools))
	}
	for i, s := range svcs {
		c := dial(t, s)
		roundTrip(t, c, fmt.Sprintf("hello %d", i))
		c.Close()
	}
	after := threads(t)
	t.Logf("threads: %d with one service, %d with %d", before, after, len(svcs))
	// A few threads may come and go with Go's own work (the test's
	// goroutines, the GC); a thread per service would add 200.
	if after > before+8 {
		t.Errorf("threads grew from %d to %d with %d services on 2 loops", before, after, len(svcs))
	}

	// Remove half and add as many again, as reloads do.
	for _, s := range svcs[100:] {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s.Shutdown(ctx)
		cancel()
	}
	for i := range 100 {
		s := sharedService(t, fmt.Sprintf("new-%d", i), set, pools)
		roundTrip(t, dial(t, s), "after reload")
	}
	roundTrip(t, dial(t, svcs[0]), "the first still serves")
	if now := threads(t); now > before+8 {
		t.Errorf("threads grew from %d to %d after 100 services replaced", before, now)
	}
}

// TestSharedLoopsDrainIsolated: a service's drain deadline cuts its own
// connections only; another service's in the same loops goes on.
func TestSharedLoopsDrainIsolated(t *testing.T) {
	be := startBackend(t, echo)
	pools := staticSet(t, be.addr())
	set := testLoops(t, 2)
	a := sharedService(t, "a", set, pools)
	b := sharedService(t, "b", set, pools)
	var as, bs []*net.TCPConn
	for i := range 4 {
		as = append(as, dial(t, a))
		bs = append(bs, dial(t, b))
		roundTrip(t, as[i], "a")
		roundTrip(t, bs[i], "b")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	a.Shutdown(ctx)
	for _, c := range as {
		if err := readEnd(c, 5*time.Second); errors.Is(err, os.ErrDeadlineExceeded) {
			t.Error("a's connection outlived a's drain")
		}
	}
	for _, c := range bs {
		roundTrip(t, c, "b goes on")
	}
	if got := b.Active(); got != len(bs) {
		t.Errorf("b has %d connections after a's drain, want %d", got, len(bs))
	}
	if _, err := net.DialTimeout("tcp", a.Addr().String(), time.Second); err == nil {
		t.Error("a still accepts after its Shutdown")
	}
	roundTrip(t, dial(t, b), "b accepts")
}

// TestSharedLoopsTCPAndUDP: a TCP and a UDP service in the same two
// loops both serve, and each Shutdown leaves the other's traffic alone.
func TestSharedLoopsTCPAndUDP(t *testing.T) {
	be := startBackend(t, echo)
	set := testLoops(t, 2)
	tcpSvc := sharedService(t, "tcp", set, staticSet(t, be.addr()))

	ubeAddr := testkit.UDPServer(t, func(d []byte) []byte { return append([]byte("udp:"), d...) })
	upools := backends.NewSet("dns", backends.RoundRobin, backends.SetOptions{})
	upools.Update([]backends.Spec{{ID: ubeAddr, Address: ubeAddr, Weight: 1}})
	t.Cleanup(upools.Close)
	usvc, err := udp.NewService(udp.Config{Name: "dns", Listen: "127.0.0.1:0"}, upools, udp.Options{Loops: set})
	if err != nil {
		t.Fatal(err)
	}
	if err := usvc.Listen(); err != nil {
		t.Fatal(err)
	}
	uctx, ucancel := context.WithCancel(context.Background())
	userved := make(chan error, 1)
	go func() { userved <- usvc.Serve(uctx) }()
	udpShut := false
	shutUDP := func() {
		if udpShut {
			return
		}
		udpShut = true
		ucancel()
		<-userved
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		usvc.Shutdown(ctx)
	}
	t.Cleanup(shutUDP)

	uc, err := net.Dial("udp", usvc.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { uc.Close() })
	udpRoundTrip := func(msg string) error {
		buf := make([]byte, 512)
		for range 20 {
			uc.Write([]byte(msg))
			uc.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
			n, err := uc.Read(buf)
			if err == nil {
				if got := string(buf[:n]); got != "udp:"+msg {
					return fmt.Errorf("udp answer %q, want %q", got, "udp:"+msg)
				}
				return nil
			}
		}
		return errors.New("no udp answer")
	}
	tc := dial(t, tcpSvc)
	roundTrip(t, tc, "tcp")
	if err := udpRoundTrip("q1"); err != nil {
		t.Fatal(err)
	}
	if usvc.Active() != 1 {
		t.Errorf("udp sessions %d, want 1", usvc.Active())
	}
	// The UDP service goes; the TCP connection stays.
	shutUDP()
	roundTrip(t, tc, "tcp after udp's shutdown")
	if tcpSvc.Active() != 1 {
		t.Errorf("tcp connections %d after udp's shutdown, want 1", tcpSvc.Active())
	}
}

// TestStopAcceptingHandsOver: StopAccepting takes the listener out of the
// loops without closing it, so a connection that arrives meanwhile waits
// in the kernel's queue, and a service built on the socket (Files,
// ListenFiles: what a successor process does) serves it.
func TestStopAcceptingHandsOver(t *testing.T) {
	be := startBackend(t, echo)
	pools := staticSet(t, be.addr())
	set := testLoops(t, 2)
	old := sharedService(t, "old", set, pools)
	open := dial(t, old)
	roundTrip(t, open, "before")
	old.StopAccepting()

	// Queued, not accepted: the handshake completes in the kernel.
	waiting := dial(t, old)
	if _, err := waiting.Write([]byte("queued")); err != nil {
		t.Fatal(err)
	}
	if got := old.Active(); got != 1 {
		t.Fatalf("old has %d connections after StopAccepting, want 1", got)
	}

	files, err := old.Files()
	if err != nil {
		t.Fatal(err)
	}
	next, err := NewService(Config{Name: "next", Listen: old.Addr().String(), ZeroCopy: true}, pools, Options{Loops: set})
	if err != nil {
		t.Fatal(err)
	}
	if err := next.ListenFiles(files); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		f.Close()
	}
	if next.Addr().String() != old.Addr().String() {
		t.Errorf("next listens on %v, want %v", next.Addr(), old.Addr())
	}
	serveService(t, next)
	buf := make([]byte, len("queued"))
	waiting.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := waiting.Read(buf); err != nil || string(buf) != "queued" {
		t.Fatalf("the queued connection: %q, %v; want it served by next", buf, err)
	}
	// The old service's connection is still its own.
	roundTrip(t, open, "after")
	if old.Active() != 1 || next.Active() != 1 {
		t.Errorf("old %d, next %d connections; want 1 each", old.Active(), next.Active())
	}
	open.Close()
	waiting.Close()
}

// TestListenFilesRefusesNonListener: a socket that does not listen is
// refused with an error, not served.
func TestListenFilesRefusesNonListener(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	f, err := pc.(*net.UDPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := NewService(Config{Name: "x", Listen: "127.0.0.1:0"}, staticSet(t, "127.0.0.1:1"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ListenFiles([]*os.File{f}); err == nil {
		t.Error("ListenFiles took a UDP socket")
	}
}
