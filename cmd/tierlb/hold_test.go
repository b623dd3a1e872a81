package main

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHold: the holder sleeps until SIGTERM and then exits 0, also as the
// first process of a container, where an unhandled SIGTERM is ignored.
func TestHold(t *testing.T) {
	if code, _, stderr := runInProcess(t, "hold", "x"); code != exitConfig || !strings.Contains(stderr, "takes no arguments") {
		t.Fatalf("hold x: exit %d, %q", code, stderr)
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			p := startBinary(t, "hold")
			p.WaitLog(t, "holding the network namespace")
			if !p.Alive() {
				t.Fatal("hold exited on its own")
			}
			if err := p.Cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if code := p.Wait(t, 10*time.Second); code != 0 {
				t.Fatalf("exit %d, want 0", code)
			}
		})
	}
}
