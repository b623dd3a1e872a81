//go:build linux

package proxy

import (
	"errors"
	"fmt"
	"io"

	"golang.org/x/sys/unix"

	"github.com/tierlb/tierlb/proxy/internal/evloop"
	"github.com/tierlb/tierlb/proxy/internal/uring"
)

// Small messages in batches. A wakeup of a busy loop finds many sockets
// readable at once, each with a small message: one request or one answer.
// Read and sent one at a time, each costs a recv and a send, and on a
// virtual machine a syscall's entry and exit cost about as much as the TCP
// work inside it. So the directions a wakeup finds readable are queued
// instead of pumped, and when the wakeup's events are all dispatched their
// reads go to the kernel in one io_uring_enter, then the sends of what
// they read in another: two syscalls for the batch. Everything else about
// a direction is unchanged (took and sendOn are the same code as the
// plain path's): what follows a full read (a burst, spliced), a partial
// send (the rest through sendOn, then a pending buffer), EOF, errors.
// Without io_uring (an old kernel, kernel.io_uring_disabled, a seccomp
// profile that forbids it, engine.io_uring: false) every direction is
// pumped at once, as before.

// batchMax is how many directions one submission carries; a wakeup with
// more submits as it goes. Each has a buffer of its own, as the reads all
// happen before any send: 32 of bufSize, 1 MiB of address space per loop,
// of which a loop of small messages touches a page or two each.
const batchMax = 32

// ioBatch is a loop's ring and the directions queued for it.
type ioBatch struct {
	ring  *uring.Ring // nil: every direction is pumped at once
	bufs  []byte      // batchMax buffers of bufSize, in one mapping
	n     int
	slots [batchMax]batchSlot
	done  [batchMax]uring.Completion

	// ends are the registrations and closes of this wakeup's sockets,
	// made together at its end (flushEnds).
	ends    [batchMax]ending
	nend    int
	endRes  [batchMax]int32
	endDone [batchMax]bool
	nending int // ends the ring completed, for the tests
}

// batchSlot is one queued direction and what became of it.
type batchSlot struct {
	c    *conn
	gen  uint32
	up   bool
	op   uint8 // opNone, or the operation submitted for it
	done bool  // the operation completed: res is its result
	res  int32
	read int32 // bytes read, to be sent
	more int   // the send's MSG_MORE
}

const (
	opNone uint8 = iota
	opRecv
	opSend
	opRegister
	opClose
)

// ending is a socket's registration in the loop's epoll set or its close,
// made at the end of the wakeup.
type ending struct {
	op      uint8 // opRegister or opClose
	backend bool  // the registration is of the backend's socket
	fd      int32
	epfd    int32 // the registration's epoll set
	c       *conn // the registration's connection, failed if it fails
	gen     uint32
	ev      unix.EpollEvent // the registration's; stays here until submitted
}

// open sets the loop's ring up; the error says why batching is off. The
// buffers are mapped outside Go's heap: a page is resident once a message
// has touched it, and the heap's size, so the GC's target, does not grow
// by a megabyte per loop.
func (b *ioBatch) open() error {
	bufs, err := unix.Mmap(-1, 0, batchMax*bufSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("map batch buffers: %w", err)
	}
	r, err := uring.New(batchMax)
	if err != nil {
		unix.Munmap(bufs)
		return err
	}
	b.ring, b.bufs = r, bufs
	return nil
}

// close stops batching. After a failed ring the buffers stay mapped: an
// operation it did not complete may still write to them.
func (b *ioBatch) close() {
	if b.ring != nil {
		b.ring.Close()
		b.ring = nil
		unix.Munmap(b.bufs)
		b.bufs = nil
	}
}

// abandon stops batching after the ring failed.
func (b *ioBatch) abandon() {
	b.ring.Close()
	b.ring = nil
}

func (b *ioBatch) buf(i int) []byte { return b.bufs[i*bufSize : (i+1)*bufSize] }

// queueRecv queues c's direction for the wakeup's batch.
func (l *loop) queueRecv(c *conn, up bool) {
	b := &l.io
	b.slots[b.n] = batchSlot{c: c, gen: c.gen, up: up}
	b.n++
	if b.n == batchMax {
		l.flushBatch()
	}
}

// alive reports that the slot's connection is the one queued and open: a
// connection failed by an earlier slot of the batch is skipped.
func (s *batchSlot) alive() bool { return s.c.gen == s.gen && s.c.state == stateOpen }

func (s *batchSlot) dir() *direction { return s.c.dir(s.up) }

// flushBatch reads every queued direction, sends what was read, and lets
// pump go on with any that has more to do.
func (l *loop) flushBatch() {
	b := &l.io
	n := b.n
	if n == 0 {
		return
	}
	b.n = 0
	if n == 1 {
		// Alone, a message costs a recv and a send either way, and two
		// io_uring_enter calls cost more than those two.
		s := b.slots[0]
		b.slots[0] = batchSlot{}
		if s.alive() {
			l.pump(s.c, s.dir())
		}
		return
	}
	slots := b.slots[:n]

	// Reads. A slot whose direction changed since it was queued is left
	// to pump below.
	for i := range slots {
		s := &slots[i]
		d := s.dir()
		if b.ring == nil || !s.alive() || d.pending() || d.eof || !d.readable || (d.bulk && !d.noPipe) {
			continue
		}
		src, _ := s.c.ends(s.up)
		if b.ring.Recv(src, b.buf(i), 0, uint64(i)) == nil {
			s.op = opRecv
		}
	}
	l.submitBatch(slots)
	for i := range slots {
		s := &slots[i]
		if s.op != opRecv || !s.done || !s.alive() {
			continue
		}
		r, err := result(s.res)
		more, ok := l.took(s.c, s.dir(), s.up, r, err)
		if ok && err == nil && r > 0 {
			s.read, s.more = int32(r), more
		}
	}

	// Sends, prepared only now that no slot can fail a connection whose
	// descriptor another slot would write to.
	for i := range slots {
		s := &slots[i]
		s.op, s.done = opNone, false
		if s.read == 0 || !s.alive() {
			continue
		}
		_, dst := s.c.ends(s.up)
		if b.ring == nil {
			l.sendOn(s.c, s.dir(), dst, s.up, b.buf(i)[:s.read], s.more)
			continue
		}
		if b.ring.Send(dst, b.buf(i)[:s.read], uint32(s.more), uint64(i)) == nil {
			s.op = opSend
		}
	}
	l.submitBatch(slots)
	for i := range slots {
		s := &slots[i]
		if s.op != opSend || !s.done || !s.alive() {
			continue
		}
		d := s.dir()
		_, dst := s.c.ends(s.up)
		w, err := result(s.res)
		switch {
		case err == unix.EAGAIN || err == unix.EINTR:
			w = 0
		case err != nil:
			l.fail(s.c, "write", s.up, err)
			continue
		case w == 0:
			l.fail(s.c, "write", s.up, io.ErrShortWrite)
			continue
		default:
			l.count(s.c, d, w)
		}
		if w < int(s.read) {
			l.sendOn(s.c, d, dst, s.up, b.buf(i)[w:s.read], s.more)
		}
	}

	// What is left: a burst, an EOF to pass on, a slot not read.
	for i := range slots {
		s := &slots[i]
		if s.alive() {
			if d := s.dir(); !d.pending() && (d.readable || (d.eof && !d.shut)) {
				l.pump(s.c, d)
			}
		}
		slots[i] = batchSlot{}
	}
}

// Registrations and closes in batches. A new connection's client socket
// costs an epoll_ctl to register, and a connection that ends two closes;
// a wakeup of short connections has several of each. So they are queued,
// in order, and made together at the end of the wakeup through the ring.
// A socket registered late loses no event: epoll reports what is already
// readable when it is added, at the next wait, as it would have anyway.
// A queued socket to close is out of the loop's table but still open, so
// no new socket can take its number before the close. (The shutdown that
// passes a FIN on is not batched: io_uring always hands
// IORING_OP_SHUTDOWN to a worker thread, measured here at 18µs and one
// more thread in the process, where shutdown(2) is one inline syscall.)

// queueRegister registers fd, c's client socket or, connecting, its
// backend's, at the end of the wakeup; if that fails, the connection
// fails then, or for a backend's socket its attempt does.
func (l *loop) queueRegister(c *conn, fd int, backend bool) {
	b := &l.io
	if b.ring == nil && b.nend == 0 {
		e := ending{op: opRegister, backend: backend, fd: int32(fd), c: c, gen: c.gen}
		if err := l.register(fd, c.gen); err != nil {
			l.registerFailed(&e, err)
		}
		return
	}
	e := l.queueEnd()
	e.op, e.backend, e.fd, e.c, e.gen = opRegister, backend, int32(fd), c, c.gen
	e.epfd = int32(l.el.Adopt(fd, connEvents, c.gen, l, &e.ev))
	l.endQueued()
}

// queueClose closes fd at the end of the wakeup.
func (l *loop) queueClose(fd int) {
	b := &l.io
	if b.ring == nil && b.nend == 0 {
		evloop.Close(fd)
		return
	}
	e := l.queueEnd()
	e.op, e.fd = opClose, int32(fd)
	l.endQueued()
}

// queueEnd returns the next entry of the queue, cleared.
func (l *loop) queueEnd() *ending {
	b := &l.io
	e := &b.ends[b.nend]
	*e = ending{}
	b.nend++
	return e
}

// endQueued flushes a full queue.
func (l *loop) endQueued() {
	if b := &l.io; b.nend == len(b.ends) {
		l.flushEnds()
	}
}

// flushEnds makes the queued registrations and closes, in the order they
// were queued, in one io_uring_enter. It runs between batches, when the
// ring holds nothing else. What the ring did not complete (it failed
// first) is made with the plain syscall: an entry the kernel took and did
// not complete cannot be, as epoll_ctl on the loop's own epoll set and a
// socket's close complete inline, so nothing is made twice. A failed
// registration fails its connection, whose closes are queued anew and
// made before flushEnds returns.
func (l *loop) flushEnds() {
	b := &l.io
	for b.nend > 0 {
		n := b.nend
		done, res := b.endDone[:n], b.endRes[:n]
		clear(done)
		if n > 1 && b.ring != nil {
			l.submitEnds(n)
		}
		// A copy: failing a connection queues its closes anew.
		todo := b.ends
		b.nend = 0
		for i := range todo[:n] {
			e := &todo[i]
			switch {
			case !done[i]:
				l.endNow(e)
			case e.op == opRegister && res[i] < 0:
				_, err := result(res[i])
				l.registerFailed(e, err)
			}
			b.ends[i] = ending{}
		}
	}
}

// submitEnds submits the queue's first n entries and files their results.
func (l *loop) submitEnds(n int) {
	b := &l.io
	for i := range b.ends[:n] {
		e := &b.ends[i]
		var err error
		if e.op == opRegister {
			err = b.ring.EpollCtl(int(e.epfd), unix.EPOLL_CTL_ADD, int(e.fd), &e.ev, uint64(i))
		} else {
			err = b.ring.CloseFD(int(e.fd), uint64(i))
		}
		if err != nil {
			break
		}
	}
	err := b.ring.Submit()
	for {
		k := b.ring.Reap(b.done[:])
		if k == 0 {
			break
		}
		for _, c := range b.done[:k] {
			if i := int(c.UserData); i < n && !b.endDone[i] {
				b.endDone[i], b.endRes[i] = true, c.Res
				b.nending++
			}
		}
	}
	if err != nil {
		l.el.Log().Warn("io_uring batch failed: small messages go one syscall at a time in this loop", "err", err)
		b.abandon()
	}
}

// endNow makes one registration or close with its syscall.
func (l *loop) endNow(e *ending) {
	if e.op == opClose {
		evloop.Close(int(e.fd))
		return
	}
	if err := evloop.EpollCtl(int(e.epfd), unix.EPOLL_CTL_ADD, int(e.fd), &e.ev); err != nil {
		l.registerFailed(e, err)
	}
}

// registerFailed fails the connection of a registration that failed, or
// the attempt when it was the backend's socket, as a failed connect
// would; unless the connection ended meanwhile (its close then came after
// the registration).
func (l *loop) registerFailed(e *ending, err error) {
	c := e.c
	switch {
	case c.gen != e.gen || c.state == stateClosed:
	case !e.backend:
		l.fail(c, "register", false, err)
	case c.state == stateConnecting && c.bfd == e.fd:
		l.abandonAttempt(c)
		if l.localDialError(c, "epoll_ctl", err) {
			return
		}
		l.dialFailed(c, err)
		l.dialNext(c)
	}
}

// errBatchLost ends a connection whose read or send was in a ring that
// failed before it completed: its bytes may have been read.
var errBatchLost = errors.New("io_uring operation lost with its ring")

// submitBatch submits the prepared entries and files each completion in
// its slot. If the ring fails, batching stops for this loop: the slots
// whose operation did not complete fail their connections, the others go
// on, and the loop pumps from then on.
func (l *loop) submitBatch(slots []batchSlot) {
	b := &l.io
	want := 0
	for i := range slots {
		if slots[i].op != opNone {
			want++
		}
	}
	if want == 0 {
		return
	}
	err := b.ring.Submit()
	got := 0
	for {
		k := b.ring.Reap(b.done[:])
		if k == 0 {
			break
		}
		for _, c := range b.done[:k] {
			if i := int(c.UserData); i < len(slots) && slots[i].op != opNone && !slots[i].done {
				slots[i].res, slots[i].done = c.Res, true
				got++
			}
		}
	}
	if err == nil && got == want {
		return
	}
	l.el.Log().Warn("io_uring batch failed: small messages go one syscall at a time in this loop",
		"err", err, "submitted", want, "completed", got)
	b.abandon()
	for i := range slots {
		s := &slots[i]
		switch {
		case s.op == opNone || s.done || !s.alive():
		case s.op == opRecv:
			l.fail(s.c, "read", !s.up, errBatchLost)
		default:
			l.fail(s.c, "write", s.up, errBatchLost)
		}
	}
}

// result splits a completion's result into a count and an error.
func result(res int32) (int, error) {
	if res < 0 {
		return 0, evloop.Errno(unix.Errno(-res))
	}
	return int(res), nil
}
