package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tierlb/tierlb/backends/docker"
	"github.com/tierlb/tierlb/config"
	"github.com/tierlb/tierlb/internal/testkit"
)

// tlsServer is a TLS backend on loopback with a self-signed certificate of
// its own, written to certFile: it answers each connection with its name.
type tlsServer struct {
	name     string
	cert     *x509.Certificate
	certFile string
	ln       net.Listener
}

func startTLSServer(t *testing.T, name string, dnsNames ...string) *tlsServer {
	t.Helper()
	cert := testkit.SelfSignedCert(t, name, dnsNames...)
	der, leaf := cert.Certificate[0], cert.Leaf
	s := &tlsServer{name: name, cert: leaf, certFile: filepath.Join(t.TempDir(), name+".pem")}
	if err := os.WriteFile(s.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	var err error
	s.ln, err = tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.ln.Close() })
	go func() {
		for {
			c, err := s.ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if err := c.(*tls.Conn).Handshake(); err != nil {
					return
				}
				io.WriteString(c, name+"\n")
				io.Copy(io.Discard, c)
			}()
		}
	}()
	return s
}

func (s *tlsServer) addr() string { return s.ln.Addr().String() }

// tlsGreeting connects to addr with server name sni, trusting only want's
// certificate, and returns the backend's answer.
func tlsGreeting(t *testing.T, addr, sni string, want *tlsServer) string {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(want.cert)
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: sni, RootCAs: roots})
	if err != nil {
		t.Fatalf("%q through %s: %v", sni, addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("%q: read: %v", sni, err)
	}
	return strings.TrimSpace(line)
}

// opensslSubject connects with openssl s_client -servername and returns
// the subject of the certificate it was shown; "" without openssl, which
// CI installs (.ci/run), so there its absence fails.
func opensslSubject(t *testing.T, addr, sni, caFile string) string {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("openssl s_client is needed: %v", err)
		}
		t.Logf("no openssl (apt-get install openssl): s_client not tried")
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "openssl", "s_client", "-connect", addr, "-servername", sni,
		"-CAfile", caFile, "-verify_return_error", "-brief")
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl s_client -servername %s: %v\n%s", sni, err, out)
	}
	for line := range strings.SplitSeq(string(out), "\n") {
		if s, ok := strings.CutPrefix(line, "Peer certificate: "); ok {
			return strings.TrimSpace(s)
		}
	}
	t.Fatalf("openssl s_client -servername %s: no peer certificate in\n%s", sni, out)
	return ""
}

func TestSNIRoutingEndToEnd(t *testing.T) {
	app := startTLSServer(t, "app", "app.example.com")
	api := startTLSServer(t, "api", "api.example.com")
	wild := startTLSServer(t, "wild", "x.apps.example.com")
	def := startTLSServer(t, "default", "other.org")
	shared := testkit.ClosedPort(t)
	admin := testkit.ClosedPort(t)
	cfg := fmt.Sprintf(`admin: {listen: %q}
services:
  - {name: app, listen: %q, sni: [app.example.com], backends: {static: [%q]}, health: {type: none}}
  - {name: api, listen: %q, sni: [API.example.com.], backends: {static: [%q]}, health: {type: none}}
  - {name: wild, listen: %q, sni: ["*.apps.example.com"], backends: {static: [%q]}, health: {type: none}}
  - {name: default, listen: %q, sni: ["*"], backends: {static: [%q]}, health: {type: none}}
  - {name: plain, listen: %q, backends: {static: [%q]}, health: {type: none}}
`, admin, shared, app.addr(), shared, api.addr(), shared, wild.addr(), shared, def.addr(), testkit.ClosedPort(t), app.addr())
	p := startBinary(t, "run", "--config", writeFile(t, "sni.yaml", cfg))
	p.WaitLog(t, `msg="serving sni routes"`)

	for _, tt := range []struct {
		sni  string
		want *tlsServer
	}{
		{"app.example.com", app},
		{"api.example.com", api},
		{"x.apps.example.com", wild},
		{"other.org", def},
	} {
		if got := tlsGreeting(t, shared, tt.sni, tt.want); got != tt.want.name {
			t.Errorf("crypto/tls %q reached %s, want %s", tt.sni, got, tt.want.name)
		}
		if got := opensslSubject(t, shared, tt.sni, tt.want.certFile); got != "" && got != "CN = "+tt.want.name {
			t.Errorf("openssl %q was shown %q, want CN = %s", tt.sni, got, tt.want.name)
		}
	}

	// Plain HTTP on the shared port is closed and counted under it.
	c, err := net.DialTimeout("tcp", shared, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: app.example.com\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, _ := c.Read(make([]byte, 1)); n != 0 {
		t.Error("plain HTTP got an answer on the shared TLS port")
	}
	c.Close()
	metric := fmt.Sprintf(`tierlb_connections_rejected_total{reason="not_tls",service=%q} 1`, shared)
	testkit.Eventually(t, 10*time.Second, "not_tls counted", func() bool {
		_, body := httpGet(t, "http://"+admin+"/metrics")
		return strings.Contains(body, metric)
	})

	code, out, _ := runInProcess(t, "status", "--admin", "http://"+admin)
	if code != 0 || !strings.Contains(out, "SNI") || !strings.Contains(out, "*.apps.example.com") {
		t.Errorf("status (exit %d) does not show the names:\n%s", code, out)
	}
}

func TestLabelDeclaredSNIServices(t *testing.T) {
	engine := newFakeEngine(t)
	static := startBackend(t, "static")
	app := startTLSServer(t, "app", "app.example.com")
	api := startTLSServer(t, "api", "api.example.com", "v2.api.example.com")
	_, appPort, _ := net.SplitHostPort(app.addr())
	_, apiPort, _ := net.SplitHostPort(api.addr())
	shared := testkit.ClosedPort(t)
	p := startBinaryEnv(t, []string{"TIERLB_DOCKER_ENABLED=true"}, "run", "--config", writeFile(t, "tierlb.yaml", discoveryConfig(engine.url, static.addr())))
	admin := p.WaitLog(t, `msg="admin listening" addr=(\S+)`)
	waitHTTP(t, "http://"+admin+"/readyz", 200)

	declare := func(id, name, service, port, sni string) {
		engine.start(strings.Repeat(id, 64), name, map[string]string{
			"tierlb.service": service, "tierlb.listen": shared, "tierlb.port": port,
			"tierlb.sni": sni, "tierlb.health.type": "none",
		})
	}
	declare("a", "app-1", "app", appPort, "app.example.com")
	declare("b", "api-1", "api", apiPort, "api.example.com, *.api.example.com")
	testkit.Eventually(t, 15*time.Second, "both names routed", func() bool {
		return strings.Contains(p.Logs(), `msg="serving sni routes"`) && strings.Contains(p.Logs(), "services=api,app")
	})
	if got := tlsGreeting(t, shared, "app.example.com", app); got != "app" {
		t.Errorf("app.example.com reached %s", got)
	}
	if got := tlsGreeting(t, shared, "v2.api.example.com", api); got != "api" {
		t.Errorf("v2.api.example.com reached %s", got)
	}

	// explain names each container's service with its server names.
	testkit.Eventually(t, 10*time.Second, "explain shows the names", func() bool {
		_, body := httpGet(t, "http://"+admin+"/api/v1/explain")
		return strings.Contains(body, `"sni": [`) && strings.Contains(body, `"*.api.example.com"`)
	})
	if code, out, _ := runInProcess(t, "explain", "--admin", "http://"+admin); code != 0 || !strings.Contains(out, "api (sni api.example.com,*.api.example.com)") {
		t.Errorf("explain (exit %d) does not show api's names:\n%s", code, out)
	}

	// A declaration claiming a name already routed is left out, loudly.
	declare("c", "dup-1", "dup", appPort, "APP.example.com")
	p.WaitLog(t, `label-declared service not started: its listen address is taken" service=dup .*"APP.example.com\\" is also routed to service app`)

	// The last replica of app goes: the waiting declaration takes the
	// name over, and api is served throughout.
	engine.remove(strings.Repeat("a", 64))
	p.WaitLog(t, `msg="service removed: draining" service=app`)
	p.WaitLog(t, `msg="sni routes" listen=\S+ services=api,dup`)
	if got := tlsGreeting(t, shared, "app.example.com", app); got != "app" {
		t.Errorf("app.example.com reached %s through dup", got)
	}
	if got := tlsGreeting(t, shared, "api.example.com", api); got != "api" {
		t.Errorf("api.example.com reached %s after app left", got)
	}
}

// TestApplySharedAddress reloads a shared TLS port through its changes:
// a second sni service joins, then a plain service takes the address
// over (the front must let go first), then sni services come back.
func TestApplySharedAddress(t *testing.T) {
	app := startTLSServer(t, "app", "app.example.com")
	api := startTLSServer(t, "api", "api.example.com")
	plain := startBackend(t, "plain")
	shared := testkit.ClosedPort(t)
	conf := func(services ...string) *config.Config {
		t.Helper()
		yaml := "services:\n"
		for _, s := range services {
			switch s {
			case "app":
				yaml += fmt.Sprintf("  - {name: app, listen: %q, sni: [app.example.com], backends: {static: [%q]}, health: {type: none}}\n", shared, app.addr())
			case "api":
				yaml += fmt.Sprintf("  - {name: api, listen: %q, sni: [api.example.com], backends: {static: [%q]}, health: {type: none}}\n", shared, api.addr())
			case "plain":
				yaml += fmt.Sprintf("  - {name: plain, listen: %q, backends: {static: [%q]}, health: {type: none}}\n", shared, plain.addr())
			}
		}
		cfg, err := config.Load(config.Source{File: writeFile(t, "c.yaml", yaml)})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Shutdown.DrainTimeout = 2 * time.Second
		return cfg
	}
	sup := newSupervisor(deps{Log: slog.New(slog.DiscardHandler)}, &readiness{})
	if err := sup.Start(conf("app")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	if got := tlsGreeting(t, shared, "app.example.com", app); got != "app" {
		t.Fatalf("app.example.com reached %s", got)
	}
	if got := sup.addr("app"); got != shared {
		t.Errorf("addr(app) = %q, want the front's %s", got, shared)
	}

	if err := sup.Apply(conf("app", "api")); err != nil {
		t.Fatalf("apply app+api: %v", err)
	}
	if got := tlsGreeting(t, shared, "api.example.com", api); got != "api" {
		t.Errorf("api.example.com reached %s", got)
	}
	if got := tlsGreeting(t, shared, "app.example.com", app); got != "app" {
		t.Errorf("app.example.com reached %s after api joined", got)
	}

	if err := sup.Apply(conf("plain")); err != nil {
		t.Fatalf("apply plain: %v", err)
	}
	if got := waitGreetingFrom(t, shared, "plain"); got != "plain" {
		t.Errorf("the plain service answered %q on the former TLS port", got)
	}

	if err := sup.Apply(conf("api", "app")); err != nil {
		t.Fatalf("apply back to sni: %v", err)
	}
	if got := tlsGreeting(t, shared, "api.example.com", api); got != "api" {
		t.Errorf("api.example.com reached %s after the port came back", got)
	}
}

// TestExplanationCopiesEveryField sets every field of the provider's
// explanation and finds each in the admin API's, so a field added there
// is not dropped here unseen.
func TestExplanationCopiesEveryField(t *testing.T) {
	var d docker.Explanation
	dv := reflect.ValueOf(&d).Elem()
	for i := range dv.NumField() {
		f := dv.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString(dv.Type().Field(i).Name)
		case reflect.Int:
			f.SetInt(int64(i + 1))
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Slice:
			f.Set(reflect.ValueOf([]string{dv.Type().Field(i).Name}))
		default:
			t.Fatalf("field %s of kind %s: teach this test to set it", dv.Type().Field(i).Name, f.Kind())
		}
	}
	a := explanation(d, []string{"x.example.com"})
	av := reflect.ValueOf(a)
	for i := range dv.NumField() {
		name := dv.Type().Field(i).Name
		if got := av.FieldByName(name); !got.IsValid() || !reflect.DeepEqual(got.Interface(), dv.Field(i).Interface()) {
			t.Errorf("%s not copied: %v", name, got)
		}
	}
	if len(a.SNI) != 1 {
		t.Errorf("SNI = %q", a.SNI)
	}
}
