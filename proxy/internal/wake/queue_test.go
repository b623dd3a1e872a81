//go:build linux

package wake

import (
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// readable reports whether the eventfd would wake an epoll_wait now.
func readable(t *testing.T, fd int) bool {
	t.Helper()
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	if err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func TestQueue(t *testing.T) {
	var q Queue[int]
	if err := q.Open(); err != nil {
		t.Fatal(err)
	}
	if readable(t, q.FD()) {
		t.Fatal("a new queue wakes its loop")
	}
	q.Post(1)
	q.Post(2)
	if !readable(t, q.FD()) {
		t.Fatal("posting does not wake the loop")
	}
	batch := q.Take()
	if !slices.Equal(batch, []int{1, 2}) {
		t.Fatalf("took %v, want [1 2]", batch)
	}
	if readable(t, q.FD()) {
		t.Fatal("the loop is still woken after taking the queue")
	}
	q.Done(batch)
	q.Post(3)
	if got := q.Take(); !slices.Equal(got, []int{3}) {
		t.Fatalf("took %v after reuse, want [3]", got)
	}
	q.Close()
	if q.Post(4) {
		t.Fatal("a closed queue took a request")
	}
}
