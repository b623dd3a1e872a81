package main

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// waitGone polls until pid no longer exists (or is a zombie) or the deadline.
func waitGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		st, err := readProcStat(pid)
		if err != nil || st.State == 'Z' {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// TestStopAllKillsTheGroup: a child's own children (like nginx workers) go
// too, and descendants finds them first.
func TestStopAllKillsTheGroup(t *testing.T) {
	ps := newProcs(t.TempDir())
	t.Cleanup(ps.stopAll)
	// The shell ignores SIGTERM so the SIGKILL fallback is exercised.
	p, err := ps.start("tree", []string{"/bin/sh", "-c", "trap '' TERM; sleep 60 & echo $!; wait"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var child int
	deadline := time.Now().Add(5 * time.Second)
	for child == 0 && time.Now().Before(deadline) {
		b, _ := os.ReadFile(p.logPath)
		child, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		time.Sleep(10 * time.Millisecond)
	}
	if child == 0 {
		t.Fatal("the shell never reported its child")
	}
	found := false
	for _, pid := range descendants(p.pid()) {
		found = found || pid == child
	}
	if !found {
		t.Errorf("descendants(%d) = %v lacks %d", p.pid(), descendants(p.pid()), child)
	}
	ps.stopAll()
	if !p.exited() {
		t.Error("the shell survived stopAll")
	}
	if !waitGone(child, 5*time.Second) {
		t.Errorf("grandchild %d survived stopAll", child)
	}
}

func TestWaitListening(t *testing.T) {
	ps := newProcs(t.TempDir())
	t.Cleanup(ps.stopAll)
	p, err := ps.start("false", []string{"/bin/false"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	err = waitListening(context.Background(), p, []int{port}, 5*time.Second)
	if !errors.Is(err, errExited) {
		t.Errorf("err %v, want errExited for a process that quit", err)
	}
}

func TestRunAsNobody(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to nobody")
	}
	cred, err := nobody()
	if err != nil {
		t.Fatal(err)
	}
	ps := newProcs(t.TempDir())
	t.Cleanup(ps.stopAll)
	p, err := ps.start("id", []string{"/usr/bin/id", "-u"}, nil, cred)
	if err != nil {
		t.Fatal(err)
	}
	<-p.done
	if got := strings.TrimSpace(p.logTail()); got != strconv.Itoa(int(cred.Uid)) {
		t.Errorf("child ran as uid %q, want %d", got, cred.Uid)
	}
	if cred.Uid == 0 || cred.Gid == 0 {
		t.Errorf("nobody resolved to root: %+v", cred)
	}
}
