//go:build linux

package evloop

import (
	"context"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// recorder is a handler and a driver that counts what the loop gives it.
type recorder struct {
	ready   chan int
	ticks   int
	stopped bool
}

func (r *recorder) Ready(ev *unix.EpollEvent) {
	var b [8]byte
	_, _ = unix.Read(int(ev.Fd), b[:])
	r.ready <- int(ev.Fd)
}
func (r *recorder) Tick()           { r.ticks++ }
func (r *recorder) Deadline() int64 { return -1 }
func (r *recorder) Stop()           { r.stopped = true }

func runSet(t *testing.T, n int) (*Set, context.CancelFunc, chan error) {
	t.Helper()
	set, err := NewSet(n, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- set.Run(ctx) }()
	return set, cancel, done
}

// TestLoopDispatch: a registered descriptor's events reach its handler in
// the loop; a driver attached to the loop ticks, and stops with it.
func TestLoopDispatch(t *testing.T) {
	set, cancel, done := runSet(t, 2)
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	r := &recorder{ready: make(chan int, 1)}
	l := set.Loops()[1]
	if l.Index() != 1 || set.Len() != 2 {
		t.Fatalf("loop index %d of %d", l.Index(), set.Len())
	}
	var addErr error
	l.Call(func() {
		l.Driver(r, func(*Loop) Driver { return r })
		addErr = l.Add(efd, unix.EPOLLIN, l.NextGen(), r)
	})
	if addErr != nil {
		t.Fatal(addErr)
	}
	one := [8]byte{1}
	unix.Write(efd, one[:])
	select {
	case fd := <-r.ready:
		if fd != efd {
			t.Errorf("handler got fd %d, want %d", fd, efd)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event dispatched")
	}
	ticks := 0
	l.Call(func() { ticks = r.ticks })
	if ticks == 0 {
		t.Error("the driver never ticked")
	}
	// Del: no more events, the descriptor stays open.
	l.Call(func() { addErr = l.Del(efd) })
	unix.Write(efd, one[:])
	l.Call(func() {})
	select {
	case <-r.ready:
		t.Error("an event after Del")
	default:
	}
	cancel()
	<-done
	if !r.stopped {
		t.Error("the driver was not stopped with its loop")
	}
	if l.Post(func() {}) {
		t.Error("a stopped loop took work")
	}
}

// TestSetStopsAfterLastHolder: the loops outlive Run's context while a
// service holds them, and the last Release waits for them to stop.
func TestSetStopsAfterLastHolder(t *testing.T) {
	set, cancel, done := runSet(t, 1)
	if !set.Acquire() {
		t.Fatal("Acquire refused on a running set")
	}
	cancel()
	select {
	case <-done:
		t.Fatal("Run returned while a holder remained")
	case <-time.After(50 * time.Millisecond):
	}
	if !set.Loops()[0].Call(func() {}) {
		t.Fatal("the loop stopped while held")
	}
	set.Release()
	if set.Loops()[0].Post(func() {}) {
		t.Error("the loop takes work after the last Release")
	}
	<-done
	if set.Acquire() {
		t.Error("Acquire succeeded on a stopped set")
	}
}

// TestRawWaitLetsTheRuntimeRun: a loop with a spare P waits in a raw
// epoll_wait holding its P; the rest of the program must still run beside
// it, stop-the-world collections must still stop it (a signal ends the
// wait), and its events must still be served, busy or idle.
func TestRawWaitLetsTheRuntimeRun(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	set, cancel, done := runSet(t, 1)
	l := set.Loops()[0]
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	r := &recorder{ready: make(chan int, 1)}
	var addErr error
	l.Call(func() { addErr = l.Add(efd, unix.EPOLLIN|unix.EPOLLET, l.NextGen(), r) })
	if addErr != nil {
		t.Fatal(addErr)
	}
	one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	deadline := time.After(30 * time.Second)
	for i := range 200 {
		if i%2 == 0 {
			// Idle stretches: the loop is in its raw wait or past it.
			time.Sleep(time.Duration(i%13) * time.Millisecond)
		}
		if i%50 == 25 {
			// Idle past every raw window: the loop parks in the
			// netpoller.
			time.Sleep(idleWindows*yieldEvery + 20*time.Millisecond)
		}
		if _, err := unix.Write(efd, one); err != nil {
			t.Fatal(err)
		}
		select {
		case <-r.ready:
		case <-deadline:
			t.Fatalf("event %d not served", i)
		}
		if i%20 == 0 {
			runtime.GC() // stops the world: the loop's P included
		}
	}
	// A goroutine that needs the other P runs meanwhile.
	spun := make(chan struct{})
	go func() {
		for range 1000 {
			runtime.Gosched()
		}
		close(spun)
	}()
	select {
	case <-spun:
	case <-deadline:
		t.Fatal("a goroutine beside the loop did not run")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := running.Load(); n != 0 {
		t.Fatalf("%d loops still counted as running", n)
	}
}
