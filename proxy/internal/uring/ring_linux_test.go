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

// TestCloseFD: closes complete inline, each descriptor is gone (its peer
// reads EOF), and a bad descriptor is an error of its own entry only.
func TestCloseFD(t *testing.T) {
	r := newRing(t, 8)
	// Not socketpair's: its cleanup would close a1 and a2 a second time,
	// when their numbers may belong to someone else.
	pair := func() (int, int) {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fds[1]) })
		return fds[0], fds[1]
	}
	a1, b1 := pair()
	a2, b2 := pair()
	var out [16]Completion
	for i, fd := range []int{a1, a2, -1} {
		if err := r.CloseFD(fd, uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	got := map[uint64]int32{}
	for _, c := range out[:r.Reap(out[:])] {
		got[c.UserData] = c.Res
	}
	if got[0] != 0 || got[1] != 0 || got[2] != -int32(unix.EBADF) || len(got) != 3 {
		t.Fatalf("close results %v, want 0:0 1:0 2:-EBADF", got)
	}
	for _, fd := range []int{a1, a2} {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != unix.EBADF {
			t.Errorf("descriptor %d after its close: F_GETFD says %v, want EBADF", fd, err)
		}
	}
	buf := make([]byte, 1)
	for _, fd := range []int{b1, b2} {
		if n, err := unix.Read(fd, buf); n != 0 || err != nil {
			t.Errorf("peer %d of a closed socket read %d, %v; want EOF", fd, n, err)
		}
	}
}
