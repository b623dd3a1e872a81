//go:build linux

package udp

import "time"

// Every session of a service has the same timeout, so the order in which
// sessions expire is the order of their latest datagrams. The loop keeps
// its sessions in a list in that order: a datagram moves its session to
// the back (a few pointer writes, no syscall, no heap), expiry takes from
// the front, and the loop sleeps until the front session's deadline. A
// reload that changes session_timeout applies to every session, which
// keeps the order valid.
type sessionList struct {
	head, tail *session
}

func (q *sessionList) pushBack(s *session) {
	s.prev, s.next = q.tail, nil
	if q.tail != nil {
		q.tail.next = s
	} else {
		q.head = s
	}
	q.tail = s
}

func (q *sessionList) remove(s *session) {
	if s.prev != nil {
		s.prev.next = s.next
	} else {
		q.head = s.next
	}
	if s.next != nil {
		s.next.prev = s.prev
	} else {
		q.tail = s.prev
	}
	s.prev, s.next = nil, nil
}

// touch records a datagram of s, either way, at the loop's clock.
func (l *loop) touch(s *session) {
	s.last = l.now
	if l.expiry.tail != s {
		l.expiry.remove(s)
		l.expiry.pushBack(s)
	}
}

// expire ends the sessions whose timeout has passed.
func (l *loop) expire() {
	timeout := l.cfg.sessionTimeout()
	for s := l.expiry.head; s != nil && l.now-s.last >= timeout; s = l.expiry.head {
		l.end(s, EndIdleTimeout)
	}
}

// waitMillis is how long epoll_wait may sleep: until the oldest session's
// deadline, rounded up so that the wakeup never comes just before it.
func (l *loop) waitMillis() int {
	s := l.expiry.head
	if s == nil {
		return -1
	}
	d := s.last + l.cfg.sessionTimeout() - l.clock()
	if d <= 0 {
		return 0
	}
	return int(min((d+int64(time.Millisecond)-1)/int64(time.Millisecond), 1<<30))
}
