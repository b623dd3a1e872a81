//go:build linux

package proxy

import (
	"io"

	"golang.org/x/sys/unix"
)

const (
	// bufSize is the loop's read buffer, and the size of a pending buffer
	// lent to a direction whose destination is full.
	bufSize = 32 << 10
	// bulkMin: a burst shorter than this goes back from splicing to
	// reading; a read that fills bufSize starts splicing.
	bulkMin = 32 << 10
	// pumpBudget is how many bytes one direction moves per wakeup before
	// the other connections of the loop get their turn: four pipefuls
	// (pipeSize), about 0.7 ms of splicing at 1.5 GB/s. A smaller turn cut
	// each burst into more rounds of the loop, and each round costs more
	// than its epoll_wait: with one pipeful a turn, the bench's 1 MiB
	// responses cost 0.35-0.46 proxy CPU s per GB at 1 loop, with four
	// 0.27-0.35 (bench bulk, same rounds; README "The data path").
	pumpBudget = 4 * pipeSize
)

// Moving bytes, edge-triggered. Each socket is registered once for
// EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET and never modified: a direction
// remembers that its source is readable until a read says it is drained,
// and waits for an EPOLLOUT edge only while bytes are pending. A read
// shorter than the buffer drained the socket, so a small message costs one
// recv and one send; a FIN that arrived with the data is known from
// EPOLLRDHUP, without a read that returns 0, and an RST from EPOLLERR.
// Level-triggered would need an epoll_ctl whenever a direction blocks or
// unblocks, which under backpressure is every write.

// event handles the events of one socket of an open (or opening) connection.
func (l *loop) event(c *conn, fd int, ev uint32) {
	client := fd == int(c.cfd)
	if !client && c.state != stateOpen {
		if c.state == stateConnecting {
			l.connectEvent(c, ev)
		}
		return
	}
	in, out := &c.up, &c.down // the directions reading from and writing to fd
	if !client {
		in, out = &c.down, &c.up
	}
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		in.readable = true
		if ev&(unix.EPOLLRDHUP|unix.EPOLLHUP) != 0 {
			in.rdhup = true
		}
		if ev&unix.EPOLLERR != 0 {
			// An RST (with or without data before it): the reads go on
			// past the data to the error, which resets the other side.
			in.errSeen = true
		}
	}
	if ev&unix.EPOLLERR != 0 && (in.eof || in.pending()) {
		// No read of this socket is coming soon (it ended, or its bytes
		// wait for the other side) to report the reset: take it from
		// SO_ERROR.
		if err := socketError(fd); err != nil {
			l.fail(c, "read", !client, err)
			return
		}
	}
	if c.state == stateHeader || c.state == stateHello {
		if in.readable {
			if c.state == stateHeader {
				l.readHeader(c)
			} else {
				l.readHello(c)
			}
		}
		return
	}
	if c.state == stateWaiting {
		if in.readable {
			l.clientSpoke(c)
		}
		return
	}
	if c.state != stateOpen {
		return // the client spoke before the backend answered: remembered
	}
	if ev&unix.EPOLLOUT != 0 && out.pending() {
		l.pump(c, out)
		if c.state != stateOpen {
			return
		}
	}
	if in.readable {
		if l.io.ring != nil && !in.pending() && !in.eof && (!in.bulk || in.noPipe) {
			l.queueRecv(c, in == &c.up)
		} else {
			l.pump(c, in)
		}
	}
}

// pump moves one direction until its source is drained, its destination
// is full, its budget is spent, or it ends.
func (l *loop) pump(c *conn, d *direction) {
	up := d == &c.up
	src, dst := c.ends(up)
	budget := pumpBudget
	for {
		if d.pending() && !l.writePending(c, d, dst, up) {
			return
		}
		if d.eof {
			if !d.shut {
				l.shutWrite(c, d, dst, up)
			}
			return
		}
		if !d.readable {
			return
		}
		if budget <= 0 {
			if !d.queued {
				d.queued = true
				l.again = append(l.again, work{c: c, gen: c.gen, up: up})
			}
			return
		}
		var n int
		var ok bool
		if d.bulk && !d.noPipe {
			n, ok = l.spliceIn(c, d, src, up)
		} else {
			n, ok = l.recvIn(c, d, src, dst, up)
		}
		if !ok {
			return
		}
		budget -= n
	}
}

// recvIn reads into the loop's buffer and sends it on at once; what the
// destination does not take waits in a pending buffer. A read that fills
// the buffer means a burst, which is spliced.
func (l *loop) recvIn(c *conn, d *direction, src, dst int, up bool) (int, bool) {
	n, err := sysRead(src, l.buf[:])
	more, ok := l.took(c, d, up, n, err)
	if !ok || err != nil || n == 0 {
		return 0, ok
	}
	if !l.sendOn(c, d, dst, up, l.buf[:n], more) {
		return 0, false
	}
	return n, true
}

// took applies the outcome of a read of up to bufSize bytes to d: drained,
// at its end, failed, or a burst. It returns the flags to send the bytes
// on with, and false if the connection failed.
func (l *loop) took(c *conn, d *direction, up bool, n int, err error) (more int, ok bool) {
	switch {
	case err == unix.EINTR:
		return 0, true
	case err == unix.EAGAIN:
		d.readable, d.noPipe = false, false
		return 0, true
	case err != nil:
		l.fail(c, "read", !up, err)
		return 0, false
	case n == 0:
		d.eof, d.readable = true, false
		return 0, true
	}
	c.last = l.el.Now
	if n < bufSize && !d.errSeen {
		// Drained. A FIN seen before this read is all that is left.
		d.readable, d.noPipe = false, false
		if d.rdhup {
			d.eof = true
			// The FIN is passed on right after these bytes: MSG_MORE
			// holds them back for it, so that both leave in one
			// segment instead of two (a request/response connection
			// ending with the answer is one packet shorter).
			more = unix.MSG_MORE
		}
	} else if c.cfg.ZeroCopy && !d.noPipe {
		d.bulk = true
	}
	return more, true
}

// sendOn writes b to dst; what dst does not take waits in a pending buffer
// for its EPOLLOUT edge. False if the connection failed.
func (l *loop) sendOn(c *conn, d *direction, dst int, up bool, b []byte, more int) bool {
	off := 0
	for off < len(b) {
		w, err := sysSend(dst, b[off:], more)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
		case err != nil:
			l.fail(c, "write", up, err)
			return false
		case w == 0:
			l.fail(c, "write", up, io.ErrShortWrite)
			return false
		default:
			off += w
			l.count(c, d, w)
			continue
		}
		break
	}
	if off < len(b) {
		d.pend = l.getBuf()
		d.off, d.end = 0, int32(copy(d.pend[:], b[off:]))
	}
	return true
}

// spliceIn moves what the source holds into a pipe lent for the burst;
// writePending moves it on. An empty pipe goes back when the source is drained,
// so an idle connection holds none.
func (l *loop) spliceIn(c *conn, d *direction, src int, up bool) (int, bool) {
	if d.pipe == nil {
		p, err := l.getPipe()
		if err != nil {
			// No pipe (EMFILE, ENFILE, the per-user budget): this burst
			// goes through the buffer instead of failing.
			d.noPipe = true
			return 0, true
		}
		d.pipe = p
	}
	n, err := sysSplice(src, d.pipe.w, d.pipe.size)
	switch {
	case err == unix.EINTR:
		return 0, true
	case err == unix.EAGAIN:
		d.readable = false
		l.putPipe(d.pipe)
		d.pipe = nil
		if d.burst < bulkMin {
			d.bulk = false // small messages again
		}
		d.burst = 0
		return 0, true
	case err != nil:
		l.fail(c, "read", !up, err)
		return 0, false
	case n == 0:
		d.eof, d.readable = true, false
		return 0, true
	}
	c.last = l.el.Now
	d.inPipe = int32(n)
	d.burst = int32(min(int(d.burst)+n, 1<<30))
	return n, true
}

// writePending writes what is pending to dst; false if dst is full or
// failed.
func (l *loop) writePending(c *conn, d *direction, dst int, up bool) bool {
	for d.inPipe > 0 {
		n, err := sysSplice(d.pipe.r, dst, int(d.inPipe))
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return false
		case err != nil:
			l.fail(c, "write", up, err)
			return false
		case n == 0:
			l.fail(c, "write", up, io.ErrShortWrite)
			return false
		}
		d.inPipe -= int32(n)
		l.count(c, d, n)
	}
	for d.off < d.end {
		n, err := sysSend(dst, d.pend[d.off:d.end], 0)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return false
		case err != nil:
			l.fail(c, "write", up, err)
			return false
		case n == 0:
			l.fail(c, "write", up, io.ErrShortWrite)
			return false
		}
		d.off += int32(n)
		l.count(c, d, n)
	}
	if d.pend != nil {
		l.putBuf(d.pend)
		d.pend, d.off, d.end = nil, 0, 0
	}
	return true
}

// count adds n written bytes, exactly as the syscalls returned them. The
// backend's counters get them at the loop's next flush (counters.go), so
// a message costs no atomic add.
func (l *loop) count(c *conn, d *direction, n int) {
	d.n += int64(n)
	if !c.unflushed {
		l.markUnflushed(c)
	}
}

// shutWrite passes a FIN on once everything before it was written. The
// first FIN names how the connection ended and starts the half-close
// grace of the other direction; the second closes the connection.
func (l *loop) shutWrite(c *conn, d *direction, dst int, up bool) {
	d.shut = true
	l.releaseDir(d)
	if up {
		c.setEnd(EndClientClose)
	} else {
		c.setEnd(EndBackendClose)
	}
	if c.up.shut && c.down.shut {
		// Both sources are read to their FIN, so closing sends a FIN,
		// not an RST: no shutdown needed for the second one.
		l.finish(c)
		return
	}
	if err := sysShutdown(dst, unix.SHUT_WR); err != nil {
		l.fail(c, "close", up, err)
		return
	}
	c.halfAt = l.el.Now + int64(c.cfg.Timeouts.halfClose())
	l.scheduleIdle(c)
}

// runAgain continues the directions that used up their budget.
func (l *loop) runAgain() {
	if len(l.again) == 0 {
		return
	}
	// The directions that use up their budget again queue into the
	// spare list, not a new one: a bulk transfer does so on every round.
	todo := l.again
	l.again, l.spare = l.spare[:0], nil
	for i, w := range todo {
		todo[i] = work{}
		if w.c.gen != w.gen || w.c.state != stateOpen {
			continue
		}
		d := w.c.dir(w.up)
		d.queued = false
		l.pump(w.c, d)
	}
	l.spare = todo[:0]
}
