//go:build linux

package evloop

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tierlb/tierlb/internal/testkit"
)

// TestParkingWait: a parked wait returns the epoll set's events once they
// are ready, returns none when its time is up, and leaves no descriptor
// in the netpoller or open behind it.
func TestParkingWait(t *testing.T) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(epfd) })
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(efd) })
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(efd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &ev); err != nil {
		t.Fatal(err)
	}
	var events [8]unix.EpollEvent
	p := newParking(epfd, events[:])
	fds := testkit.OpenFDs(t)

	n, err := p.wait(5)
	if n != 0 || err != nil {
		t.Errorf("wait with nothing ready = %d, %v; want 0, nil", n, err)
	}

	written := make(chan error, 1)
	go func() {
		time.Sleep(20 * time.Millisecond) // let the wait park first
		one := [8]byte{1}
		_, err := unix.Write(efd, one[:])
		written <- err
	}()
	n, err = p.wait(-1)
	if werr := <-written; werr != nil {
		t.Fatal(werr)
	}
	if err != nil || n != 1 || int(events[0].Fd) != efd {
		t.Errorf("wait for an event = %d, %v (fd %d); want 1, nil (fd %d)", n, err, events[0].Fd, efd)
	}
	// Ready before the wait: no parking at all.
	n, _ = p.wait(-1)
	if n != 1 {
		t.Errorf("wait with an event pending = %d events, want 1", n)
	}
	if got := testkit.OpenFDs(t); got != fds {
		t.Errorf("%d descriptors open after parking, want %d", got, fds)
	}
}

// TestIdleLoopParksBesideAnAwakeOne: of two idle loops, one parks after a
// single idle window instead of idleWindows of them. While another loop
// holds a P, sysmon keeps its usual pace whether or not this one parks,
// and each idle window of a raw wait ends in a timer wakeup: at a low
// rate, the second loop of two paid that a dozen times for every few
// connections it served. The test counts windows, not time, so a slow or
// loaded machine does not change what it sees.
func TestIdleLoopParksBesideAnAwakeOne(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(3))
	parks := make(chan int, 64)
	parkHook = func(_ *Loop, windows int) {
		select {
		case parks <- windows:
		default:
		}
	}
	t.Cleanup(func() { parkHook = nil })
	set, cancel, done := runSet(t, 2)
	t.Cleanup(func() {
		cancel()
		<-done
	})
	for _, l := range set.Loops() {
		if !l.Call(func() {}) {
			t.Fatal("loop stopped")
		}
	}
	select {
	case windows := <-parks:
		// The old rule parked only after idleWindows; a loop that found
		// nothing for half a slice parks after its first or second.
		if windows > 2 {
			t.Fatalf("the first loop to park waited %d idle windows; want at most 2 while another loop is awake", windows)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no loop parked within 10s of both falling idle")
	}
}
