package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestIdleMemory measures what an idle proxied connection costs the proxy
// process: it runs a service in a child process (so the test's own clients
// and backend are not counted), opens 2,000 connections through it that
// each moved a message both ways, and reads the child's RSS and descriptor
// count before and after. It runs under both engines (TestMain).
func TestIdleMemory(t *testing.T) {
	if os.Getenv("TIERLB_IDLE_CHILD") != "" {
		idleChild()
		return
	}
	if testing.Short() {
		t.Skip("opens 2,000 connections")
	}
	be := startBackend(t, smallEcho)
	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleMemory$")
	cmd.Env = append(os.Environ(), "TIERLB_IDLE_CHILD=1", "TIERLB_IDLE_BACKEND="+be.addr())
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("child address: %v (stderr %s)", err, stderr.String())
	}
	addr := strings.TrimSpace(line)
	pid := cmd.Process.Pid

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
	open(200) // warm up: tables, pools, the heap's first growth
	time.Sleep(300 * time.Millisecond)
	rss0, fds0 := procRSS(t, pid), procFDs(t, pid)
	const n = 2000
	open(n)
	time.Sleep(300 * time.Millisecond)
	rss1, fds1 := procRSS(t, pid), procFDs(t, pid)
	perRSS := float64(rss1-rss0) / n
	perFD := float64(fds1-fds0) / n
	t.Logf("%s engine: %.0f bytes RSS and %.2f fds per idle connection (%d connections, RSS %d -> %d KiB)",
		currentEngine(), perRSS, perFD, n, rss0>>10, rss1>>10)
	if currentEngine() == engineEpoll {
		if perFD > 2.01 {
			t.Errorf("fds per idle connection = %.2f, want 2", perFD)
		}
		if !raceEnabled() && perRSS > 6<<10 {
			t.Errorf("RSS per idle connection = %.0f bytes, want under 6 KiB", perRSS)
		}
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

// idleChild serves until stdin closes.
func idleChild() {
	set := backendsForChild(os.Getenv("TIERLB_IDLE_BACKEND"))
	s, err := NewService(Config{Name: "idle", Listen: "127.0.0.1:0", ZeroCopy: true}, set, Options{})
	if err == nil {
		err = s.Listen()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	fmt.Println(s.Addr())
	s.Serve(ctx)
	sctx, scancel := context.WithTimeout(context.Background(), time.Second)
	defer scancel()
	s.Shutdown(sctx)
	os.Exit(0)
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
