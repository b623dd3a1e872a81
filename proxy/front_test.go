package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tierlb/tierlb/internal/testkit"
)

// tlsBackend is a TLS server on loopback with a self-signed certificate of
// its own: it answers every connection with its name, then echoes.
type tlsBackend struct {
	name string
	cert *x509.Certificate
	tb   *testBackend
}

func startTLSBackend(t testing.TB, name string, dnsNames ...string) *tlsBackend {
	t.Helper()
	cert := testkit.SelfSignedCert(t, name, dnsNames...)
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	b := &tlsBackend{name: name, cert: cert.Leaf}
	b.tb = startBackend(t, func(c net.Conn) {
		tc := tls.Server(c, cfg)
		if err := tc.Handshake(); err != nil {
			return
		}
		if _, err := io.WriteString(tc, name+"\n"); err != nil {
			return
		}
		io.Copy(tc, tc)
	})
	return b
}

func (b *tlsBackend) addr() string { return b.tb.addr() }

// sniPort is a Front with its services, serving until the test ends.
type sniPort struct {
	front *Front
	svcs  map[string]*Service
	m     *Metrics
}

func startSNIPort(t testing.TB, front Config, routes map[string]*tlsBackend, names map[string][]string) *sniPort {
	t.Helper()
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Metrics: m}
	if front.Name == "" {
		front.Name = "front"
	}
	if front.Listen == "" {
		front.Listen = "127.0.0.1:0"
	}
	f, err := NewFront(front, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Listen(); err != nil {
		t.Fatal(err)
	}
	p := &sniPort{front: f, svcs: map[string]*Service{}, m: m}
	var list []*Service
	for svc, b := range routes {
		s, err := NewService(Config{Name: svc, Listen: front.Listen, SNI: names[svc]}, staticSet(t, b.addr()), opts)
		if err != nil {
			t.Fatal(err)
		}
		p.svcs[svc] = s
		list = append(list, s)
	}
	if err := f.SetRoutes(list); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, len(list)+1)
	for _, s := range list {
		go func() { s.Serve(ctx); done <- struct{}{} }()
	}
	go func() { f.Serve(ctx); done <- struct{}{} }()
	t.Cleanup(func() {
		cancel()
		for range len(list) + 1 {
			<-done
		}
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		f.Shutdown(sctx)
		for _, s := range list {
			s.Shutdown(sctx)
		}
	})
	return p
}

func (p *sniPort) addr() string { return p.front.Addr().String() }

func (p *sniPort) rejected(reason string) float64 {
	return p.m.rejectedCount("front", reason)
}

// tlsThrough connects through the port with server name sni, trusting
// only want's certificate, and returns the name the backend answers.
func tlsThrough(t testing.TB, addr, sni string, want *tlsBackend, wrap func(net.Conn) net.Conn) string {
	t.Helper()
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	var c net.Conn = raw
	if wrap != nil {
		c = wrap(raw)
	}
	roots := x509.NewCertPool()
	roots.AddCert(want.cert)
	tc := tls.Client(c, &tls.Config{ServerName: sni, RootCAs: roots})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake for %q: %v", sni, err)
	}
	if got := tc.ConnectionState().PeerCertificates[0]; !got.Equal(want.cert) {
		t.Fatalf("server name %q: certificate of %s, want %s's", sni, got.Subject.CommonName, want.name)
	}
	line, err := bufio.NewReader(tc).ReadString('\n')
	if err != nil {
		t.Fatalf("read through %q: %v", sni, err)
	}
	return strings.TrimSpace(line)
}

func TestFrontRoutesByServerName(t *testing.T) {
	app := startTLSBackend(t, "app", "app.example.com", "APP2.example.com")
	wild := startTLSBackend(t, "wild", "*.example.com", "deep.sub.example.com")
	eu := startTLSBackend(t, "eu", "x.eu.example.com")
	def := startTLSBackend(t, "default", "elsewhere.org")
	p := startSNIPort(t, Config{}, map[string]*tlsBackend{"app": app, "wild": wild, "eu": eu, "default": def},
		map[string][]string{"app": {"app.example.com", "app2.example.com"}, "wild": {"*.example.com"}, "eu": {"*.eu.example.com"}, "default": {"*"}})
	tests := []struct {
		sni  string
		want *tlsBackend
	}{
		{"app.example.com", app},
		{"APP2.example.com", app},
		{"other.example.com", wild},
		{"deep.sub.example.com", wild},
		{"x.eu.example.com", eu},
		{"elsewhere.org", def},
	}
	for _, tt := range tests {
		if got := tlsThrough(t, p.addr(), tt.sni, tt.want, nil); got != tt.want.name {
			t.Errorf("server name %q reached %s, want %s", tt.sni, got, tt.want.name)
		}
	}
	for _, name := range []string{"app", "wild", "eu", "default"} {
		if n := p.m.acceptedCount(name); n == 0 {
			t.Errorf("service %s counted no accepted connection", name)
		}
	}
}

// byteConn writes one byte per segment.
type byteConn struct{ net.Conn }

func (c byteConn) Write(b []byte) (int, error) {
	for i := range b {
		if _, err := c.Conn.Write(b[i : i+1]); err != nil {
			return i, err
		}
	}
	return len(b), nil
}

// splitHelloConn re-frames the first TLS record written, the ClientHello,
// into two records split at byte at of the handshake message.
type splitHelloConn struct {
	net.Conn
	at   int
	done bool
}

func (c *splitHelloConn) Write(b []byte) (int, error) {
	if c.done || len(b) < 5+c.at+1 {
		return c.Conn.Write(b)
	}
	c.done = true
	n := int(b[3])<<8 | int(b[4])
	msg, rest := b[5:5+n], b[5+n:]
	var out []byte
	for _, part := range [][]byte{msg[:c.at], msg[c.at:]} {
		out = append(out, b[0], b[1], b[2], byte(len(part)>>8), byte(len(part)))
		out = append(out, part...)
	}
	out = append(out, rest...)
	if _, err := c.Conn.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}

func TestFrontReadsSplitHellos(t *testing.T) {
	app := startTLSBackend(t, "app", "app.example.com")
	other := startTLSBackend(t, "other", "other.example.com")
	p := startSNIPort(t, Config{}, map[string]*tlsBackend{"app": app, "other": other},
		map[string][]string{"app": {"app.example.com"}, "other": {"other.example.com"}})
	wraps := map[string]func(net.Conn) net.Conn{
		"byte by byte": func(c net.Conn) net.Conn { return byteConn{c} },
		"two records":  func(c net.Conn) net.Conn { return &splitHelloConn{Conn: c, at: 200} },
		"two records, handshake header split": func(c net.Conn) net.Conn {
			return &splitHelloConn{Conn: c, at: 2}
		},
	}
	for name, wrap := range wraps {
		if got := tlsThrough(t, p.addr(), "app.example.com", app, wrap); got != "app" {
			t.Errorf("%s: reached %s, want app", name, got)
		}
	}
}

func TestFrontRefuses(t *testing.T) {
	app := startTLSBackend(t, "app", "app.example.com")
	p := startSNIPort(t, Config{Timeouts: Timeouts{ClientHello: 300 * time.Millisecond}},
		map[string]*tlsBackend{"app": app}, map[string][]string{"app": {"app.example.com"}})

	// A silent client is closed at the timeout; meanwhile others pass.
	silent, err := net.Dial("tcp", p.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	if got := tlsThrough(t, p.addr(), "app.example.com", app, nil); got != "app" {
		t.Fatalf("reached %s, want app", got)
	}
	start := time.Now()
	if err := readEnd(silent, 10*time.Second); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("silent client: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("silent client closed after %v; want about the 300ms timeout", d)
	}

	for _, in := range []string{"GET / HTTP/1.1\r\nHost: app.example.com\r\n\r\n", "\x16\x03\x01\x00\x00garbage"} {
		c, err := net.Dial("tcp", p.addr())
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, in)
		if err := readEnd(c, 10*time.Second); errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("%q: not closed: %v", in, err)
		}
		c.Close()
	}
	// No route: a name nobody claims, and no name without a default.
	for _, sni := range []string{"nobody.example.com", ""} {
		raw, err := net.Dial("tcp", p.addr())
		if err != nil {
			t.Fatal(err)
		}
		raw.SetDeadline(time.Now().Add(10 * time.Second))
		err = tls.Client(raw, &tls.Config{ServerName: sni, InsecureSkipVerify: true}).Handshake()
		raw.Close()
		if err == nil {
			t.Errorf("server name %q: handshake succeeded; want the connection closed", sni)
		}
	}
	testkit.Eventually(t, 10*time.Second, "rejections counted", func() bool {
		return p.rejected(RejectNotTLS) == 2 && p.rejected(RejectNoSNIRoute) == 3
	})
	if n := app.tb.accepted(); n != 1 {
		t.Errorf("backend got %d connections; want only the routed one", n)
	}
}

// bufConn reads through a bufio.Reader that may hold bytes already.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c bufConn) Read(b []byte) (int, error) { return c.r.Read(b) }

func TestFrontComposesWithPROXYHeaders(t *testing.T) {
	cert := testkit.SelfSignedCert(t, "app", "app.example.com")
	headers := make(chan string, 1)
	b := startBackend(t, func(c net.Conn) {
		r := bufio.NewReader(c)
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		headers <- line
		tc := tls.Server(bufConn{c, r}, &tls.Config{Certificates: []tls.Certificate{cert}})
		if tc.Handshake() == nil {
			io.WriteString(tc, "app\n")
			io.Copy(io.Discard, tc)
		}
	})
	app := &tlsBackend{name: "app", cert: cert.Leaf, tb: b}
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFront(Config{Name: "front", Listen: "127.0.0.1:0", AcceptProxyProtocol: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, Options{Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Listen(); err != nil {
		t.Fatal(err)
	}
	s, err := NewService(Config{Name: "app", SNI: []string{"app.example.com"}, ProxyProtocol: "v1",
		Allow: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}}, staticSet(t, app.addr()), Options{Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.SetRoutes([]*Service{s}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.Serve(ctx)
	go s.Serve(ctx)
	t.Cleanup(func() {
		cancel()
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		f.Shutdown(sctx)
		s.Shutdown(sctx)
	})

	// The client's PROXY header names it; the backend's names it too,
	// then the TLS bytes follow unchanged. allow is checked against the
	// name the header gave.
	withHeader := func(src string) func(net.Conn) net.Conn {
		return func(c net.Conn) net.Conn {
			io.WriteString(c, "PROXY TCP4 "+src+" 192.0.2.1 5555 443\r\n")
			return c
		}
	}
	if got := tlsThrough(t, f.Addr().String(), "app.example.com", app, withHeader("203.0.113.7")); got != "app" {
		t.Fatalf("reached %s", got)
	}
	if got := <-headers; got != "PROXY TCP4 203.0.113.7 192.0.2.1 5555 443\r\n" {
		t.Errorf("backend got header %q", got)
	}
	raw, err := net.Dial("tcp", f.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tls.Client(withHeader("198.51.100.9")(raw), &tls.Config{ServerName: "app.example.com", InsecureSkipVerify: true}).Handshake(); err == nil {
		t.Error("a client outside allow got through")
	}
	testkit.Eventually(t, 10*time.Second, "not_allowed counted for app", func() bool {
		return m.rejectedCount("app", RejectNotAllowed) == 1
	})
}

// TestFrontServiceLifecycles: a service on a shared port drains on its
// own while the front and the other services serve on; the front may shut
// down while routed connections go on; the last Shutdown ends the loops.
func TestFrontServiceLifecycles(t *testing.T) {
	a := startTLSBackend(t, "a", "a.example.com")
	b := startTLSBackend(t, "b", "b.example.com")
	f, err := NewFront(Config{Name: "front", Listen: "127.0.0.1:0"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Listen(); err != nil {
		t.Fatal(err)
	}
	sa, _ := NewService(Config{Name: "a", SNI: []string{"a.example.com"}}, staticSet(t, a.addr()), Options{})
	sb, _ := NewService(Config{Name: "b", SNI: []string{"b.example.com"}}, staticSet(t, b.addr()), Options{})
	if err := f.SetRoutes([]*Service{sa, sb}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{}, 3)
	for _, serve := range []func(context.Context) error{f.Serve, sa.Serve, sb.Serve} {
		go func() { serve(ctx); done <- struct{}{} }()
	}
	open := func(sni string, want *tlsBackend) *tls.Conn {
		roots := x509.NewCertPool()
		roots.AddCert(want.cert)
		c, err := tls.Dial("tcp", f.Addr().String(), &tls.Config{ServerName: sni, RootCAs: roots})
		if err != nil {
			t.Fatalf("%s: %v", sni, err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != want.name+"\n" {
			t.Fatalf("%s: read %q, %v", sni, line, err)
		}
		return c
	}
	ca, cb := open("a.example.com", a), open("b.example.com", b)

	// a drains alone: its deadline cuts its connection, b's goes on.
	sctx, scancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer scancel()
	if err := sa.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	if err := readEnd(ca, 10*time.Second); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Error("a's connection outlived a's drain")
	}
	if _, err := io.WriteString(cb, "still here"); err != nil {
		t.Errorf("b's connection: %v", err)
	}
	if got := tlsThrough(t, f.Addr().String(), "b.example.com", b, nil); got != "b" {
		t.Errorf("b.example.com reached %s while a drained", got)
	}
	if err := tls.Client(dialRaw(t, f.Addr().String()), &tls.Config{ServerName: "a.example.com", InsecureSkipVerify: true}).Handshake(); err == nil {
		t.Error("a.example.com still routed after a's Shutdown")
	}

	// The front goes; b's open connection stays until b shuts down.
	if err := f.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(cb, "still here"); err != nil {
		t.Errorf("b's connection after the front's Shutdown: %v", err)
	}
	bctx, bcancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer bcancel()
	sb.Shutdown(bctx)
	if err := readEnd(cb, 10*time.Second); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Error("b's connection outlived b's drain")
	}
	cancel()
	for range 3 {
		<-done
	}
	// The last Shutdown (b's) stopped the front's loops.
	if (testEngine{f.s.set}).call(func(*loop) {}) {
		t.Error("the front's loops still run after every Shutdown")
	}
}

func dialRaw(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// TestFrontPassesHelloThenFIN: a client that sends its ClientHello and
// shuts its side in the same breath gets both passed on, in order: the
// hello read whole ends the read of the socket only if no FIN is known.
func TestFrontPassesHelloThenFIN(t *testing.T) {
	got := make(chan []byte, 1)
	raw := startBackend(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(c) // up to the FIN
		got <- b
		io.WriteString(c, "bye")
	})
	p := startSNIPort(t, Config{}, map[string]*tlsBackend{"app": {name: "app", tb: raw}},
		map[string][]string{"app": {"app.example.com"}})
	hello := clientHelloFor(t, "app.example.com")
	c, err := net.Dial("tcp", p.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(hello); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	answer, err := io.ReadAll(c)
	if err != nil || string(answer) != "bye" {
		t.Fatalf("answer %q, %v; want bye and the backend's FIN", answer, err)
	}
	select {
	case b := <-got:
		if !bytes.Equal(b, hello) {
			t.Errorf("backend got %d bytes, want the %d of the hello", len(b), len(hello))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the backend saw no FIN")
	}
}

// clientHelloFor returns the first flight a crypto/tls client writes for
// server name sni: its ClientHello.
func clientHelloFor(t *testing.T, sni string) []byte {
	t.Helper()
	cc, sc := net.Pipe()
	t.Cleanup(func() { cc.Close(); sc.Close() })
	go func() {
		// Fails once the pipe closes; the hello was written by then.
		_ = tls.Client(cc, &tls.Config{ServerName: sni, InsecureSkipVerify: true}).Handshake()
	}()
	sc.SetDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, 16<<10)
	n, err := sc.Read(b)
	if err != nil {
		t.Fatal(err)
	}
	return b[:n]
}
