package handover

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/tierlb/tierlb/internal/testkit"
)

// TestHandOverLosesNothingQueued: a TCP connection waiting in the listen
// queue and a UDP datagram waiting in the receive queue before the hand-
// over are the successor's to accept and read; the predecessor stops
// accepting only on ready, and its listener stays non-blocking.
func TestHandOverLosesNothingQueued(t *testing.T) {
	before := testkit.OpenFDs(t)
	ln := tcpListener(t, true)
	uc := udpSocket(t)
	lis := listenersOf(t, ln, uc, ln) // the listener twice: sent once
	path := sockPath(t)
	srv := serve(t, path, lis, Options{Version: "old"})

	queued, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer queued.Close()
	if _, err := queued.Write([]byte("queued")); err != nil {
		t.Fatal(err)
	}
	client, err := net.Dial("udp", uc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.Write([]byte("datagram")); err != nil {
		t.Fatal(err)
	}

	in, err := Fetch(t.Context(), path, Options{Version: "new"})
	if err != nil {
		t.Fatal(err)
	}
	if in.Version != "old" || in.PID != os.Getpid() || len(in.Sockets()) != 2 {
		t.Fatalf("inherited %+v from %q pid %d", in.Sockets(), in.Version, in.PID)
	}
	tcpAddr := ln.Addr().(*net.TCPAddr).AddrPort()
	udpAddr := uc.LocalAddr().(*net.UDPAddr).AddrPort()
	if d := in.Sockets()[0]; d != (Desc{Network: "tcp", Addr: tcpAddr, ReusePort: true}) {
		t.Fatalf("tcp described as %+v", d)
	}
	if got := in.Take("udp", tcpAddr, 1); len(got) != 0 {
		t.Fatalf("udp took the tcp socket: %+v", got)
	}
	ts := in.Take("tcp", tcpAddr, 5)
	us := in.Take("udp", udpAddr, 1)
	if len(ts) != 1 || len(us) != 1 {
		t.Fatalf("took %d tcp, %d udp", len(ts), len(us))
	}
	nln, err := net.FileListener(ts[0].File)
	if err != nil {
		t.Fatal(err)
	}
	defer nln.Close()
	ts[0].File.Close()
	npc, err := net.FilePacketConn(us[0].File)
	if err != nil {
		t.Fatal(err)
	}
	defer npc.Close()
	us[0].File.Close()
	if lis.stops() != 0 {
		t.Fatal("the predecessor stopped accepting before ready")
	}
	closed, err := in.Ready(t.Context())
	if err != nil || len(closed) != 0 {
		t.Fatalf("Ready: %v, closed %v", err, closed)
	}
	<-srv.HandedOver()
	if lis.stops() != 1 || srv.Successor().Version != "new" {
		t.Fatalf("stops %d, successor %+v", lis.stops(), srv.Successor())
	}
	if !nonblocking(t, ln) {
		t.Fatal("the predecessor's listener became blocking")
	}

	c, err := nln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 16)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "queued" {
		t.Fatalf("queued connection read %q, %v", buf[:n], err)
	}
	npc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, _, err := npc.ReadFrom(buf); err != nil || string(buf[:n]) != "datagram" {
		t.Fatalf("queued datagram read %q, %v", buf[:n], err)
	}
	c.Close()
	nln.Close()
	npc.Close()
	queued.Close()
	client.Close()
	ln.Close()
	uc.Close()
	srv.Close()
	// Its successor renames a socket over the path any moment: a server
	// that handed over leaves the path alone.
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("a server that handed over removed the path: %v", err)
	}
	testkit.Eventually(t, 5*time.Second, "descriptors back to the start", func() bool { return testkit.OpenFDs(t) <= before })
}

// TestSuccessorGoesAway: a successor that takes the sockets and dies
// before ready changes nothing; the next one gets them.
func TestSuccessorGoesAway(t *testing.T) {
	ln := tcpListener(t, false)
	lis := listenersOf(t, ln)
	path := sockPath(t)
	srv := serve(t, path, lis, Options{})
	for range 3 {
		in, err := Fetch(t.Context(), path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if closed := in.Close(); len(closed) != 1 {
			t.Fatalf("Close closed %v", closed)
		}
	}
	if lis.stops() != 0 {
		t.Fatal("stopped accepting for a successor that went away")
	}
	in, err := Fetch(t.Context(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.Ready(t.Context()); err != nil {
		t.Fatal(err)
	}
	<-srv.HandedOver()
}

// TestSuccessorTooSlow: past ReadyTimeout the predecessor takes the
// successor for dead and serves the next one.
func TestSuccessorTooSlow(t *testing.T) {
	ln := tcpListener(t, false)
	path := sockPath(t)
	lis := listenersOf(t, ln)
	serve(t, path, lis, Options{ReadyTimeout: 50 * time.Millisecond})
	slow, err := Fetch(t.Context(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	next, err := Fetch(ctx, path, Options{}) // busy until the slow one times out
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	if _, err := slow.Ready(t.Context()); err == nil {
		t.Fatal("a successor past the ready timeout got an ack")
	}
	if lis.stops() != 0 {
		t.Fatal("stopped accepting for a timed-out successor")
	}
}

// TestTwoSuccessors: the second successor waits while the first takes
// over, then takes over from the first at the same path.
func TestTwoSuccessors(t *testing.T) {
	ln := tcpListener(t, false)
	path := sockPath(t)
	old := serve(t, path, listenersOf(t, ln), Options{Version: "v1"})

	first, err := Fetch(t.Context(), path, Options{Version: "v2"})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		in  *Inheritance
		err error
	}
	second := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		in, err := Fetch(ctx, path, Options{Version: "v3"})
		second <- result{in, err}
	}()

	// The first successor takes the socket, binds its own hand-over
	// socket aside, says ready, then publishes it at the path.
	taken := first.Take("tcp", ln.Addr().(*net.TCPAddr).AddrPort(), 1)
	if len(taken) != 1 {
		t.Fatal("first successor got no socket")
	}
	firstLn, err := net.FileListener(taken[0].File)
	if err != nil {
		t.Fatal(err)
	}
	defer firstLn.Close()
	taken[0].File.Close()
	mid, err := Listen(path, listenersOf(t, firstLn.(*net.TCPListener)), Options{Version: "v2"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-second:
		t.Fatalf("second successor served while the first holds the hand-over: %+v", r)
	case <-time.After(50 * time.Millisecond):
	}
	if _, err := first.Ready(t.Context()); err != nil {
		t.Fatal(err)
	}
	<-old.HandedOver()
	if err := mid.Publish(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mid.Run(ctx) }()
	defer func() { cancel(); <-done }()

	r := <-second
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.in.Close()
	if r.in.Version != "v2" {
		t.Fatalf("second successor fetched from %q, want the first successor", r.in.Version)
	}
	if _, err := r.in.Ready(t.Context()); err != nil {
		t.Fatal(err)
	}
	<-mid.HandedOver()
}

// TestSocketPath: a missing path and a stale one mean no predecessor; the
// socket is its owner's only; a published successor's path survives the
// predecessor's close, and a last process removes its own.
func TestSocketPath(t *testing.T) {
	path := sockPath(t)
	if _, err := Fetch(t.Context(), path, Options{}); !errors.Is(err, ErrNoPredecessor) {
		t.Fatalf("missing path: %v", err)
	}
	stale, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	if _, err := Fetch(t.Context(), path, Options{}); !errors.Is(err, ErrNoPredecessor) {
		t.Fatalf("stale path: %v", err)
	}

	ln := tcpListener(t, false)
	old, err := Listen(path, listenersOf(t, ln), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the stale file should stay until Publish: %v", err)
	}
	if err := old.Publish(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket file %v, %v; want a socket, mode 0600", fi.Mode(), err)
	}
	next, err := Listen(path, listenersOf(t, ln), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := next.Publish(); err != nil {
		t.Fatal(err)
	}
	old.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the predecessor's close removed its successor's socket: %v", err)
	}
	next.Close()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the last process left its socket: %v", err)
	}

	if _, err := Listen(path+"/x/y", nil, Options{}); err == nil {
		t.Fatal("a socket in a missing directory")
	}
	long := "/tmp/" + string(make([]byte, MaxPathLen))
	if _, err := Listen(long, nil, Options{}); err == nil {
		t.Fatal("a path longer than sun_path allows")
	}
}

// TestStreamSocketAtPath: pointing handover.socket at another program's
// stream socket (the Docker socket, say) is an error that says so.
func TestStreamSocketAtPath(t *testing.T) {
	path := sockPath(t)
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = Fetch(t.Context(), path, Options{})
	if err == nil || errors.Is(err, ErrNoPredecessor) || !errors.Is(err, syscall.EPROTOTYPE) {
		t.Fatalf("got %v", err)
	}
}

// TestWildcardMatches: Go binds every wildcard as a dual-stack [::].
func TestWildcardMatches(t *testing.T) {
	v6 := Desc{Network: "tcp", Addr: netip.MustParseAddrPort("[::]:80")}
	v4 := Desc{Network: "tcp", Addr: netip.MustParseAddrPort("0.0.0.0:80")}
	lo := Desc{Network: "udp", Addr: netip.MustParseAddrPort("127.0.0.1:53")}
	tests := []struct {
		name    string
		d       Desc
		network string
		addr    string
		want    bool
	}{
		{"[::] for 0.0.0.0", v6, "tcp", "0.0.0.0:80", true},
		{"[::] for [::]", v6, "tcp", "[::]:80", true},
		{"0.0.0.0 for [::]", v4, "tcp", "[::]:80", true},
		{"v6only is not a wildcard for IPv4", Desc{Network: "tcp", Addr: v6.Addr, V6Only: true}, "tcp", "0.0.0.0:80", false},
		{"other port", v6, "tcp", "0.0.0.0:81", false},
		{"other protocol", v6, "udp", "0.0.0.0:80", false},
		{"address", lo, "udp", "127.0.0.1:53", true},
		{"mapped address", lo, "udp", "[::ffff:127.0.0.1]:53", true},
		{"wildcard is not an address", v6, "tcp", "127.0.0.1:80", false},
		{"address is not a wildcard", lo, "udp", "0.0.0.0:53", false},
		{"port 0", Desc{Network: "udp", Addr: netip.MustParseAddrPort("127.0.0.1:0")}, "udp", "127.0.0.1:0", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.d.Matches(tt.network, netip.MustParseAddrPort(tt.addr)); got != tt.want {
				t.Fatalf("%s matches %s %s = %t", tt.d, tt.network, tt.addr, got)
			}
		})
	}
}
