package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tierlb/tierlb/config"
	"github.com/tierlb/tierlb/handover"
	"github.com/tierlb/tierlb/internal/listenaddr"
	"github.com/tierlb/tierlb/internal/testkit"
)

// freeRange finds n free consecutive TCP and UDP ports on 127.0.0.1.
func freeRange(t *testing.T, n int) string {
	t.Helper()
	return testkit.ListenRange(t, n, func(r string) error {
		addrs, err := listenaddr.Expand(r)
		if err != nil {
			return err
		}
		var closers []func() error
		defer func() {
			for _, c := range closers {
				c()
			}
		}()
		for _, a := range addrs {
			ln, err := net.Listen("tcp", a)
			if err != nil {
				return err
			}
			closers = append(closers, ln.Close)
			pc, err := net.ListenPacket("udp", a)
			if err != nil {
				return err
			}
			closers = append(closers, pc.Close)
		}
		return nil
	})
}

// TestHandOverProcess: a tierlb started with a changed config takes every
// socket it still listens on from the running one (TCP, UDP with one
// socket per loop, a port range, the admin listener), binds its new
// service, closes the socket of the service it dropped; the old one drains
// its open connection, which goes on meanwhile, and exits 0. check says
// beforehand what a start would do.
func TestHandOverProcess(t *testing.T) {
	web, other := startBackend(t, "web"), startBackend(t, "range")
	dns := startUDPBackend(t, "dns")
	ports := strings.Split(strings.TrimPrefix(freeRange(t, 8), "127.0.0.1:"), "-")
	var first int
	fmt.Sscan(ports[0], &first)
	port := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", first+i) }
	dir, err := os.MkdirTemp("", "tlbh")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "h.sock")
	conf := func(last string) string {
		return fmt.Sprintf(`admin: {listen: %s}
engine: {loops: 2}
handover: {socket: %s}
shutdown: {drain_timeout: 20s}
services:
  - {name: web, listen: "%s", backends: {static: [%s]}}
  - {name: dns, protocol: udp, listen: "%s", backends: {static: [%s]}, udp: {session_timeout: 1s}}
  - {name: range, listen: "127.0.0.1:%d-%d", backends: {static: [%s]}}
%s`, port(0), sock, port(1), web.addr(), port(2), dns, first+3, first+5, other.addr(), last)
	}
	oldFile := writeFile(t, "old.yaml", conf(fmt.Sprintf(`  - {name: gone, listen: "%s", backends: {static: [%s]}}`, port(6), web.addr())))
	newFile := writeFile(t, "new.yaml", conf(fmt.Sprintf(`  - {name: fresh, listen: "%s", backends: {static: [%s]}}`, port(7), web.addr())))

	old := startBinary(t, "run", "--config", oldFile)
	old.WaitLog(t, `msg="hand-over: no running tierlb at the hand-over socket; binding"`)
	if got := waitGreeting(t, port(1)); got != "web" {
		t.Fatalf("greeting %q", got)
	}
	// An open connection through the old process, used across the hand-over.
	c, err := net.Dial("tcp", port(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	echo := func(msg string) error {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintln(c, msg); err != nil {
			return err
		}
		line, err := r.ReadString('\n')
		if err == nil && strings.TrimSpace(line) != msg {
			err = fmt.Errorf("echo %q, want %q", line, msg)
		}
		return err
	}
	if _, err := r.ReadString('\n'); err != nil { // the greeting
		t.Fatal(err)
	}
	if err := echo("before"); err != nil {
		t.Fatal(err)
	}
	if got := askUDP(t, port(2), "q1"); got != "dns" {
		t.Fatalf("udp answered by %q", got)
	}

	code, out, stderr := runInProcess(t, "check", "--config", newFile)
	if code != exitOK {
		t.Fatalf("check: exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"holds 8 listening sockets", // admin, web, 2 udp (2 loops), 3 of the range, gone
		"inherit  tcp " + port(0) + " for the admin API (1 sockets)",
		"inherit  tcp " + port(1) + " for service web (1 sockets)",
		"inherit  udp " + port(2) + " for service dns (2 sockets)",
		fmt.Sprintf("inherit  tcp 127.0.0.1:%d-%d for service range (3 sockets)", first+3, first+5),
		"bind     tcp " + port(7) + " for service fresh (nothing to inherit)",
		"close    tcp " + port(6),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check does not say %q:\n%s", want, out)
		}
	}

	next := startBinary(t, "run", "--config", newFile)
	next.WaitLog(t, `msg="hand-over: accepting on the inherited sockets"`)
	next.WaitLog(t, `msg="hand-over: the predecessor stopped accepting; it drains"`)
	next.WaitLog(t, `msg="hand-over: closed an inherited socket no service listens on" socket="tcp `+port(6))
	old.WaitLog(t, `msg="hand-over: a successor accepts on the sockets; draining"`)
	if err := echo("after"); err != nil {
		t.Fatalf("the connection open on the old process: %v", err)
	}
	for i, want := range map[int]string{1: "web", 3: "range", 5: "range", 7: "web"} {
		if got := waitGreeting(t, port(i)); got != want {
			t.Errorf("port %d: greeting %q, want %q", i, got, want)
		}
	}
	if got := askUDP(t, port(2), "q2"); got != "dns" {
		t.Errorf("udp answered by %q after the hand-over", got)
	}
	if _, err := net.DialTimeout("tcp", port(6), time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("the dropped service's port: %v, want refused", err)
	}
	if code, body := httpGet(t, "http://"+port(0)+"/readyz"); code != 200 {
		t.Errorf("admin after the hand-over: %d %q", code, body)
	}
	c.Close()
	if code := old.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("the old process exited %d, want 0", code)
	}
	if !next.Alive() {
		t.Fatal("the new process exited")
	}
	if got := waitGreeting(t, port(1)); got != "web" {
		t.Errorf("after the old process exited: %q", got)
	}
}

// TestHandoverPlan: what check says for each kind of socket.
func TestHandoverPlan(t *testing.T) {
	d := func(network, addr string) handover.Desc {
		return handover.Desc{Network: network, Addr: netip.MustParseAddrPort(addr)}
	}
	cfg := &config.Config{
		Admin: config.AdminConfig{Listen: "127.0.0.1:9090"},
		Services: []config.ServiceConfig{
			{Name: "web", Protocol: "tcp", Listen: ":80"},
			{Name: "a", Protocol: "tcp", Listen: ":443", SNI: []string{"a"}},
			{Name: "b", Protocol: "tcp", Listen: ":443", SNI: []string{"b"}},
			{Name: "dns", Protocol: "udp", Listen: "0.0.0.0:53"},
			{Name: "rtp", Protocol: "udp", Listen: "0.0.0.0:5000-5002"},
		},
	}
	got := handoverPlan(cfg, []handover.Desc{
		d("tcp", "[::]:80"), d("tcp", "[::]:443"), d("udp", "[::]:53"), d("udp", "[::]:53"),
		d("udp", "[::]:5000"), d("udp", "[::]:5001"), d("tcp", "[::]:8080"),
	})
	want := []string{
		"bind     tcp 127.0.0.1:9090 for the admin API (nothing to inherit)",
		"inherit  tcp :80 for service web (1 sockets)",
		"inherit  tcp :443 for the sni services there (1 sockets)",
		"inherit  udp 0.0.0.0:53 for service dns (2 sockets)",
		"inherit  udp 0.0.0.0:5000-5002 for service rtp (2 sockets), bind 1 ports",
		"close    tcp [::]:8080 (no service of this config listens there; label-declared services may, once discovery runs)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
