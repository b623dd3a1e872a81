package faults

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// netns is a network namespace joined to the host by a veth pair on a /30
// of its own: the host end is .1, the namespace end .2.
type netns struct {
	name, hostIf, nsIf string
	hostIP, nsIP       string
}

// newNetns creates the namespace and the pair, removed at cleanup. It
// needs root and iproute2; without them the test is skipped (failed under
// CI=true).
func newNetns(t *testing.T) *netns {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil || os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("network namespace scenarios need root and iproute2 under CI=true (ip: %v, euid %d)", err, os.Geteuid())
		}
		t.Skip("network namespace scenarios need root and iproute2")
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	n := &netns{name: "tlbf" + id, hostIf: "tlbfh" + id, nsIf: "tlbfn" + id}
	// A /30 in 10.254.0.0/16 that no interface of this host is on.
	used, _ := exec.Command("ip", "-4", "-o", "addr").Output()
	for i := int(b[0]); ; i = (i + 1) % 256 {
		prefix := fmt.Sprintf("10.254.%d.", i)
		if !strings.Contains(string(used), prefix) {
			n.hostIP, n.nsIP = prefix+"1", prefix+"2"
			break
		}
		if i == int(b[0])-1 {
			t.Skip("no free /30 in 10.254.0.0/16")
		}
	}
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", n.hostIf).Run()
		_ = exec.Command("ip", "netns", "del", n.name).Run()
	})
	for _, args := range [][]string{
		{"netns", "add", n.name},
		{"link", "add", n.hostIf, "type", "veth", "peer", "name", n.nsIf},
		{"link", "set", n.nsIf, "netns", n.name},
		{"addr", "add", n.hostIP + "/30", "dev", n.hostIf},
		{"link", "set", n.hostIf, "up"},
		{"-n", n.name, "addr", "add", n.nsIP + "/30", "dev", n.nsIf},
		{"-n", n.name, "link", "set", n.nsIf, "up"},
		{"-n", n.name, "link", "set", "lo", "up"},
	} {
		n.ip(t, args...)
	}
	return n
}

func (n *netns) ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// dial opens a TCP connection from inside the namespace: the socket is
// made on a thread that has joined it, and keeps the namespace after.
func (n *netns) dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	type result struct {
		c   net.Conn
		err error
	}
	res := make(chan result, 1)
	go func() {
		// The thread is never unlocked: it dies with this goroutine rather
		// than go back to the scheduler inside the namespace.
		runtime.LockOSThread()
		f, err := os.Open("/var/run/netns/" + n.name)
		if err != nil {
			res <- result{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			res <- result{err: fmt.Errorf("setns: %w", err)}
			return
		}
		c, err := net.Dial("tcp", addr)
		res <- result{c, err}
	}()
	r := <-res
	if r.err != nil {
		t.Fatalf("dial %s from namespace %s: %v", addr, n.name, r.err)
	}
	t.Cleanup(func() { r.c.Close() })
	return r.c
}

// vanish takes the namespace's link down: its peers get no FIN, no RST,
// nothing, as when a client machine loses power.
func (n *netns) vanish(t *testing.T) {
	t.Helper()
	n.ip(t, "-n", n.name, "link", "set", n.nsIf, "down")
}
