//go:build linux

// Package wake is the request queue an event loop shares with other
// goroutines (drains, reconfigurations, shutdown): requests wait under a
// mutex, and an eventfd in the loop's epoll set wakes the loop when the
// queue turns non-empty. The TCP and the UDP loops both use it.
//
//	var q wake.Queue[request]
//	if err := q.Open(); err != nil { ... }     // then register q.FD() for EPOLLIN
//	q.Post(r)                                 // any goroutine
//	reqs := q.Take(); ...; q.Done(reqs)       // the loop, when q.FD() is readable
package wake

import (
	"sync"

	"golang.org/x/sys/unix"
)

// Queue holds a loop's pending requests. Take and Done belong to the
// loop's goroutine; Post may be called from any.
type Queue[T any] struct {
	fd     int
	buf    [8]byte // the eventfd counter, read by the loop
	spare  []T     // the last batch's backing array, reused
	mu     sync.Mutex
	reqs   []T
	closed bool
}

// Open creates the eventfd.
func (q *Queue[T]) Open() error {
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return err
	}
	q.fd = fd
	return nil
}

// FD is the eventfd to register in the loop's epoll set.
func (q *Queue[T]) FD() int { return q.fd }

// Post queues r and wakes the loop when the queue was empty. It returns
// false once the queue is closed: the loop has stopped.
func (q *Queue[T]) Post(r T) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	q.reqs = append(q.reqs, r)
	wake := len(q.reqs) == 1
	q.mu.Unlock()
	if wake {
		one := [8]byte{1}
		_, _ = unix.Write(q.fd, one[:])
	}
	return true
}

// Take returns the queued requests. The eventfd is read before the queue
// is taken, so a request posted meanwhile wakes the next epoll_wait.
func (q *Queue[T]) Take() []T {
	_, _ = unix.Read(q.fd, q.buf[:])
	q.mu.Lock()
	reqs := q.reqs
	q.reqs = q.spare[:0]
	q.mu.Unlock()
	return reqs
}

// Done hands back a batch from Take once it has run, so that the next
// batch reuses its array without keeping its requests reachable.
func (q *Queue[T]) Done(reqs []T) {
	clear(reqs)
	q.spare = reqs[:0]
}

// Close refuses further posts and closes the eventfd.
func (q *Queue[T]) Close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	unix.Close(q.fd)
}
