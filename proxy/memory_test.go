package proxy

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestIdleMemory measures what an idle proxied connection costs the proxy
// process: it runs a service in a child process (so the test's own clients
// and backend are not counted), opens 2,000 connections through it that
// each moved a message both ways, and reads the child's RSS and descriptor
// count before and after.
func TestIdleMemory(t *testing.T) {
	if isChild("TestIdleMemory") {
		serveChild("idle", Options{}, nil)
		return
	}
	if testing.Short() {
		t.Skip("opens 2,000 connections")
	}
	be := startBackend(t, smallEcho)
	child := startChild(t, "TestIdleMemory", be.addr())
	addr, pid := child.addr, child.pid()

	var held []net.Conn
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	open := func(n int) {
		for range n {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, c)
			c.SetDeadline(time.Now().Add(10 * time.Second)) // a lost wakeup fails, not hangs
			roundTrip(t, c, "make it move both ways once")
			c.SetDeadline(time.Time{})
		}
	}
	// Warm up: tables, free lists, the heap's first growth. Every
	// connection made a round trip, so the child holds it in full.
	open(200)
	rss0, fds0 := procRSS(t, pid), procFDs(t, pid)
	const n = 2000
	open(n)
	rss1, fds1 := procRSS(t, pid), procFDs(t, pid)
	perRSS := float64(rss1-rss0) / n
	perFD := float64(fds1-fds0) / n
	t.Logf("%.0f bytes RSS and %.2f fds per idle connection (%d connections, RSS %d -> %d KiB)",
		perRSS, perFD, n, rss0>>10, rss1>>10)
	if perFD > 2.01 {
		t.Errorf("fds per idle connection = %.2f, want 2", perFD)
	}
	if !raceEnabled() && perRSS > 6<<10 {
		t.Errorf("RSS per idle connection = %.0f bytes, want under 6 KiB", perRSS)
	}
}

// smallEcho echoes through a small buffer, so that 2,200 backend
// connections stay cheap for the parent.
func smallEcho(c net.Conn) {
	buf := make([]byte, 512)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func procRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

func procFDs(t *testing.T, pid int) int {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}
