//go:build linux

package proxy

import (
	"net/netip"
)

// Other goroutines (other loops, on_backend_down callbacks, name lookups)
// never touch a loop's state: they post a request to its queue and the
// loop runs it between two epoll_waits. The queue is a mutex-guarded
// slice, and an eventfd wakes the loop when the queue turns non-empty.

type reqKind uint8

const (
	reqAbort    reqKind = iota // end one connection
	reqResolved                // a backend name was resolved
	reqAdopt                   // serve a connection another loop accepted
)

// request is a message from another goroutine to a loop. A connection is
// named by pointer and generation, so that a request for a connection
// that ended, and whose struct was reused, is ignored.
type request struct {
	kind reqKind
	svc  *Service // reqAbortAll, reqAdopt: whose connection(s)
	c    *conn
	gen  uint32
	end  string
	rst  bool
	ap   netip.AddrPort
	err  error
	fd   int    // reqAdopt: the accepted socket
	port uint16 // reqAdopt: the listening port it came to
}

// post queues a request and wakes the loop when the queue was empty. It
// returns false once the loop has stopped.
func (l *loop) post(r request) bool { return l.reqs.Post(r) }

// requests runs the queued requests.
func (l *loop) requests() {
	reqs := l.reqs.Take()
	for i := range reqs {
		l.handle(&reqs[i])
	}
	l.reqs.Done(reqs)
}

func (l *loop) handle(r *request) {
	switch r.kind {
	case reqAbort:
		if r.c.gen == r.gen && r.c.state != stateClosed {
			r.c.setEnd(r.end)
			r.c.rst = r.c.rst || r.rst
			l.finish(r.c)
		}
	case reqResolved:
		if r.c.gen == r.gen && r.c.state == stateResolving {
			l.resolved(r.c, r.ap, r.err)
		}
	case reqAdopt:
		l.adopt(r.svc, r.fd, r.ap, r.port)
	}
}
