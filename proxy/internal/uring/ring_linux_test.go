package uring

import (
	"bytes"
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

func newRing(t *testing.T, entries uint32) *Ring {
	t.Helper()
	r, err := New(entries)
	if err != nil {
		if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL) {
			t.Skipf("no io_uring here: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func socketpair(t *testing.T) (int, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return fds[0], fds[1]
}

// TestRecvSend: a batch of sends and then a batch of recvs, each one
// Submit, with results by user data; an empty socket answers EAGAIN at
// once rather than waiting.
func TestRecvSend(t *testing.T) {
	r := newRing(t, 8)
	a1, b1 := socketpair(t)
	a2, b2 := socketpair(t)
	var out [16]Completion
	if err := r.Send(a1, []byte("hello"), 0, 1); err != nil {
		t.Fatal(err)
	}
	if err := r.Send(a2, []byte("world!"), 0, 2); err != nil {
		t.Fatal(err)
	}
	if err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	got := map[uint64]int32{}
	for _, c := range out[:r.Reap(out[:])] {
		got[c.UserData] = c.Res
	}
	if got[1] != 5 || got[2] != 6 || len(got) != 2 {
		t.Fatalf("send results %v, want 1:5 2:6", got)
	}

	buf1, buf2, buf3 := make([]byte, 64), make([]byte, 64), make([]byte, 64)
	for i, op := range []struct {
		fd  int
		buf []byte
	}{{b1, buf1}, {b2, buf2}, {a1, buf3}} {
		if err := r.Recv(op.fd, op.buf, 0, uint64(10+i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	got = map[uint64]int32{}
	for _, c := range out[:r.Reap(out[:])] {
		got[c.UserData] = c.Res
	}
	if got[10] != 5 || got[11] != 6 || got[12] != -int32(unix.EAGAIN) {
		t.Fatalf("recv results %v, want 10:5 11:6 12:-EAGAIN", got)
	}
	if !bytes.Equal(buf1[:5], []byte("hello")) || !bytes.Equal(buf2[:6], []byte("world!")) {
		t.Errorf("received %q and %q", buf1[:5], buf2[:6])
	}
}

// TestFull: no more entries than the ring holds wait for Submit, and a
// bad descriptor fails its own entry, not the batch.
func TestFull(t *testing.T) {
	r := newRing(t, 4)
	a, _ := socketpair(t)
	b := make([]byte, 8)
	for i := range 4 {
		fd := a
		if i == 2 {
			fd = 1 << 20 // not open
		}
		if err := r.Recv(fd, b, 0, uint64(i)); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	if err := r.Recv(a, b, 0, 9); !errors.Is(err, ErrFull) {
		t.Fatalf("fifth entry: %v, want ErrFull", err)
	}
	if err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	var out [8]Completion
	n := r.Reap(out[:])
	if n != 4 {
		t.Fatalf("%d completions, want 4", n)
	}
	for _, c := range out[:n] {
		want := -int32(unix.EAGAIN)
		if c.UserData == 2 {
			want = -int32(unix.EBADF)
		}
		if c.Res != want {
			t.Errorf("entry %d: %d, want %d", c.UserData, c.Res, want)
		}
	}
	// The ring is reusable after a full round.
	if err := r.Recv(a, b, 0, 5); err != nil {
		t.Fatal(err)
	}
	if err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	if n := r.Reap(out[:]); n != 1 {
		t.Fatalf("%d completions, want 1", n)
	}
}

func TestNoAllocs(t *testing.T) {
	r := newRing(t, 8)
	a, b := socketpair(t)
	msg, buf := []byte("x"), make([]byte, 8)
	var out [8]Completion
	allocs := testing.AllocsPerRun(100, func() {
		r.Send(a, msg, 0, 1)
		r.Submit()
		r.Reap(out[:])
		r.Recv(b, buf, 0, 2)
		r.Submit()
		r.Reap(out[:])
	})
	if allocs != 0 {
		t.Errorf("%v allocations per round trip, want 0", allocs)
	}
}

// TestLink: a chain runs in order while its entries succeed; after one
// fails the rest of the chain is cancelled, and entries outside it run.
func TestLink(t *testing.T) {
	r := newRing(t, 8)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	a, b := fds[0], fds[1]
	empty, _ := socketpair(t)
	buf := make([]byte, 8)
	r.Send(a, []byte("one"), 0, 1)
	r.Link()
	r.Send(a, []byte("two"), 0, 2)
	r.Recv(empty, buf, 0, 3) // EAGAIN: fails its chain
	r.Link()
	r.Send(a, []byte("three"), 0, 4)
	r.Link()
	r.Send(a, []byte("four"), 0, 5)
	r.Send(a, []byte("five"), 0, 6) // a chain of its own
	got := submitReap(t, r)
	want := map[uint64]int32{1: 3, 2: 3, 3: -int32(unix.EAGAIN), 4: -int32(unix.ECANCELED), 5: -int32(unix.ECANCELED), 6: 4}
	for ud, res := range want {
		if got[ud] != res {
			t.Errorf("entry %d: %d, want %d", ud, got[ud], res)
		}
	}
	// Order holds within a chain; a later chain may run first.
	var order []string
	for {
		n, err := unix.Read(b, buf)
		if err != nil {
			break
		}
		order = append(order, string(buf[:n]))
	}
	pos := map[string]int{}
	for i, w := range order {
		pos[w] = i + 1
	}
	if len(order) != 3 || pos["one"] == 0 || pos["two"] < pos["one"] || pos["five"] == 0 {
		t.Fatalf("datagrams received %q, want one before two, and five", order)
	}
}

// TestCloseFD: descriptors closed through the ring are closed when Submit
// returns; one that is not open fails its own entry.
func TestCloseFD(t *testing.T) {
	r := newRing(t, 8)
	var fds [2]int
	for i := range fds {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		fds[i] = fd
		r.CloseFD(fd, uint64(i))
	}
	r.CloseFD(1<<20, 2) // not open
	got := submitReap(t, r)
	if got[0] != 0 || got[1] != 0 || got[2] != -int32(unix.EBADF) || len(got) != 3 {
		t.Fatalf("close results %v, want 0:0 1:0 2:-EBADF", got)
	}
	for _, fd := range fds {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != unix.EBADF {
			t.Errorf("descriptor %d after its close: %v, want EBADF", fd, err)
		}
	}
}

// TestEpollCtl: a descriptor added to an epoll set through the ring
// reports its events with the data given; adding it again fails its
// entry with EEXIST.
func TestEpollCtl(t *testing.T) {
	r := newRing(t, 8)
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(epfd) })
	a, b := socketpair(t)
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(b), Pad: 77}
	r.EpollCtl(epfd, unix.EPOLL_CTL_ADD, b, &ev, 1)
	r.EpollCtl(epfd, unix.EPOLL_CTL_ADD, b, &ev, 2)
	got := submitReap(t, r)
	if got[1] != 0 || got[2] != -int32(unix.EEXIST) {
		t.Fatalf("epoll_ctl results %v, want 1:0 2:-EEXIST", got)
	}
	unix.Write(a, []byte("x"))
	evs := make([]unix.EpollEvent, 4)
	n, err := unix.EpollWait(epfd, evs, 1000)
	if err != nil || n != 1 || evs[0].Fd != int32(b) || evs[0].Pad != 77 {
		t.Fatalf("epoll_wait: %d events %+v, %v; want descriptor %d with 77", n, evs[:max(n, 0)], err, b)
	}
}

// submitReap submits what r holds and returns the results by user data.
func submitReap(t *testing.T, r *Ring) map[uint64]int32 {
	t.Helper()
	if err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	var out [16]Completion
	got := map[uint64]int32{}
	for _, c := range out[:r.Reap(out[:])] {
		got[c.UserData] = c.Res
	}
	return got
}
