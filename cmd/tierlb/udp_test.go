package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tierlb/tierlb/internal/testkit"
)

// startUDPBackend answers each datagram with "NAME DATAGRAM".
func startUDPBackend(t *testing.T, name string) string {
	t.Helper()
	return testkit.UDPServer(t, func(d []byte) []byte { return append([]byte(name+" "), d...) })
}

// askUDP sends msg from a new client socket (a new session) and returns
// the name of the backend that answered.
func askUDP(t *testing.T, addr, msg string) string {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 1<<16)
	for range 10 {
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		n, err := c.Read(buf)
		if err != nil {
			continue
		}
		name, rest, _ := strings.Cut(string(buf[:n]), " ")
		if rest != msg {
			t.Fatalf("reply %q to %q", buf[:n], msg)
		}
		return name
	}
	t.Fatalf("no reply to %q through %s", msg, addr)
	return ""
}

// freeTCPAndUDPPort returns a loopback port that neither a TCP nor a UDP
// socket held a moment ago.
func freeTCPAndUDPPort(t *testing.T) int {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		ln.Close()
		if err == nil {
			pc.Close()
			return port
		}
	}
	t.Fatal("no port free for both TCP and UDP")
	return 0
}

// A UDP service beside a TCP one on the same port, from the config file
// through the data path to the admin API and /metrics.
func TestUDPService(t *testing.T) {
	u1, u2 := startUDPBackend(t, "u1"), startUDPBackend(t, "u2")
	tb := startBackend(t, "t1")
	port := freeTCPAndUDPPort(t)
	file := writeFile(t, "tierlb.yaml", fmt.Sprintf(`admin: {listen: '127.0.0.1:0'}
log: {access: true}
services:
  - name: dns
    listen: 127.0.0.1:%[1]d
    protocol: udp
    udp: {responses: 1}
    backends: {static: ['%[2]s', '%[3]s']}
  - name: dns-tcp
    listen: 127.0.0.1:%[1]d
    health: {type: none}
    backends: {static: ['%[4]s']}
`, port, u1, u2, tb.addr()))
	p := startBinary(t, "run", "--config", file)
	addr := p.serviceAddr(t, "dns")
	admin := p.WaitLog(t, `msg="admin listening" addr=(\S+)`)
	if tcp := p.serviceAddr(t, "dns-tcp"); tcp != addr {
		t.Fatalf("tcp service on %s, udp on %s", tcp, addr)
	}
	waitGreeting(t, addr)

	var got []string
	for i := range 6 {
		got = append(got, askUDP(t, addr, fmt.Sprint("query ", i)))
	}
	// Each query is a session (responses: 1), so round robin alternates.
	for i := range got {
		if got[i] != got[i%2] || got[0] == got[1] {
			t.Fatalf("queries went to %v, want the two backends in turn", got)
		}
	}
	p.WaitLog(t, `msg=session service=dns client=\S+ backend=\S+ bytes_to_backend=7 bytes_to_client=10 datagrams_to_backend=1 datagrams_to_client=1 duration=\S+ end=responses`)

	label := func(b string) string { return `backend="` + b + `",` }
	testkit.Eventually(t, 5*time.Second, "the sessions to end", func() bool {
		return metric(t, admin, `tierlb_udp_sessions_active{`+label(u1)+`service="dns"}`) == "0" &&
			metric(t, admin, `tierlb_udp_sessions_active{`+label(u2)+`service="dns"}`) == "0"
	})
	want := map[string]string{
		`tierlb_udp_sessions_total{` + label(u1) + `service="dns"}`:                            "3",
		`tierlb_udp_datagrams_total{` + label(u1) + `direction="to_backend",service="dns"}`:    "3",
		`tierlb_udp_datagrams_total{` + label(u2) + `direction="to_client",service="dns"}`:     "3",
		`tierlb_backend_bytes_total{` + label(u1) + `direction="to_backend",service="dns"}`:    "21",
		`tierlb_backend_bytes_total{` + label(u2) + `direction="to_client",service="dns"}`:     "30",
		`tierlb_udp_dropped_total{reason="max_sessions",service="dns"}`:                        "0",
		`tierlb_udp_dropped_total{reason="no_backend",service="dns"}`:                          "0",
		`tierlb_udp_dropped_total{reason="send_error",service="dns"}`:                          "0",
		`tierlb_backend_connections_total{` + label(u1) + `service="dns"}`:                     "3",
		`tierlb_backend_connect_errors_total{` + label(u1) + `reason="refused",service="dns"}`: "0",
	}
	for name, v := range want {
		if got := metric(t, admin, name); got != v {
			t.Errorf("%s = %s, want %s", name, got, v)
		}
	}

	resp, err := http.Get("http://" + admin + "/api/v1/services")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var services []struct {
		Name, Listen, Protocol string
		Backends               []struct {
			ID               string `json:"id"`
			TotalConnections uint64 `json:"total_connections"`
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&services); err != nil {
		t.Fatal(err)
	}
	protocols := map[string]string{}
	for _, s := range services {
		protocols[s.Name] = s.Protocol
		if s.Name == "dns" && (len(s.Backends) != 2 || s.Backends[0].TotalConnections != 3) {
			t.Errorf("dns backends %+v, want 2 with 3 sessions each", s.Backends)
		}
	}
	if protocols["dns"] != "udp" || protocols["dns-tcp"] != "tcp" {
		t.Errorf("protocols %v", protocols)
	}
	code, out, _ := runInProcess(t, "status", "--admin", "http://"+admin)
	if code != 0 || !strings.Contains(out, strconv.Itoa(port)+"/udp") {
		t.Errorf("status (exit %d) does not show the UDP listener:\n%s", code, out)
	}

	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.Wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0", code)
	}
}

// A reload keeps UDP sessions on their backends; a service that changes
// protocol is replaced on the same port number.
func TestUDPReload(t *testing.T) {
	u1, u2 := startUDPBackend(t, "u1"), startUDPBackend(t, "u2")
	port := freeTCPAndUDPPort(t)
	conf := func(extra string) string {
		return fmt.Sprintf(`services:
  - name: dns
    listen: 127.0.0.1:%d
    protocol: udp
    backends: {static: ['%s', '%s']}
%s`, port, u1, u2, extra)
	}
	file := writeFile(t, "tierlb.yaml", "admin: {listen: ''}\n"+conf(""))
	p := startBinary(t, "run", "--config", file)
	addr := p.serviceAddr(t, "dns")
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ask := func(msg string) string {
		t.Helper()
		buf := make([]byte, 512)
		for range 10 {
			_, _ = c.Write([]byte(msg))
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			if n, err := c.Read(buf); err == nil {
				name, _, _ := strings.Cut(string(buf[:n]), " ")
				return name
			}
		}
		t.Fatalf("no reply to %q", msg)
		return ""
	}
	first := ask("before")
	rewrite(t, file, "admin: {listen: ''}\n"+conf("    udp: {session_timeout: 1m, max_sessions: 100}\n    balance: leastconn\n"))
	if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.WaitLog(t, `msg="service reconfigured" service=dns`)
	for i := range 3 {
		if got := ask(fmt.Sprint("after ", i)); got != first {
			t.Fatalf("the session moved from %s to %s on reload", first, got)
		}
	}
	rewrite(t, file, fmt.Sprintf("admin: {listen: ''}\nservices:\n  - {name: dns, listen: '127.0.0.1:%d', health: {type: none}, backends: {static: ['%s']}}\n",
		port, startBackend(t, "t1").addr()))
	if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.WaitLog(t, `msg=serving service=dns listen=\S+ protocol=tcp`)
	if got := waitGreeting(t, addr); got != "t1" {
		t.Fatalf("the service, now TCP, answered %q", got)
	}
}

func rewrite(t *testing.T, file, content string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
