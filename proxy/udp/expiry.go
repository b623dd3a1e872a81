//go:build linux

package udp

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
func (l *listener) touch(s *session) {
	s.last = l.lp.el.Now
	if l.expiry.tail != s {
		l.expiry.remove(s)
		l.expiry.pushBack(s)
	}
}

// expire ends the sessions whose timeout has passed.
func (l *listener) expire() {
	timeout := l.cfg.sessionTimeout()
	now := l.lp.el.Now
	for s := l.expiry.head; s != nil && now-s.last >= timeout; s = l.expiry.head {
		l.end(s, EndIdleTimeout)
	}
}

// deadline is the loop clock at which the oldest session expires, -1 if
// there is none.
func (l *listener) deadline() int64 {
	s := l.expiry.head
	if s == nil {
		return -1
	}
	return s.last + l.cfg.sessionTimeout()
}
