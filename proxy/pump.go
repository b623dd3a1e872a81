package proxy

import (
	"io"
	"net"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// copyMode chooses how bytes move. The default comes from Config.ZeroCopy;
// tests and benchmarks force the others to compare them.
type copyMode uint8

const (
	// copyAuto is copyHybrid with ZeroCopy and copyBuffer without.
	copyAuto copyMode = iota
	// copyHybrid reads small messages into a pooled buffer and splices
	// bursts (the HAProxy pattern): read and write instead of two splices
	// per small message, zero copy for bulk.
	copyHybrid
	// copySplice splices every byte through a pooled pipe.
	copySplice
	// copyStdlib is io.Copy between bare *net.TCPConn: Go's own splice with
	// a pipe pinned per direction.
	copyStdlib
	// copyBuffer is a read/write loop through pooled 32 KiB buffers.
	copyBuffer
)

func (m copyMode) String() string {
	return [...]string{"auto", "hybrid", "splice", "stdlib", "buffer"}[m]
}

const (
	// bufSize is the pooled buffer of the read/write path.
	bufSize = 32 << 10
	// bulkMin is the burst below which the hybrid mode goes back from
	// splicing to reading; a full bufSize read switches it to splicing.
	bulkMin = 32 << 10
	// flushEvery is how many bytes a direction moves before adding them to
	// the backend's counters, so long connections show up in metrics
	// without an atomic add per message.
	flushEvery  = 1 << 20
	spliceFlags = unix.SPLICE_F_NONBLOCK | unix.SPLICE_F_MOVE
)

// copier is what the copy loops of one service share: the pipes and buffers
// lent to transfers in flight.
type copier struct {
	pipes *pipePool
	bufs  sync.Pool // *[bufSize]byte
}

func newCopier() *copier {
	cp := &copier{pipes: newPipePool(64)}
	cp.bufs.New = func() any { return new([bufSize]byte) }
	return cp
}

// step is what a read callback does next.
type step uint8

const (
	stepAgain step = iota // read more now
	stepPark              // the socket is drained: wait in the poller
	stepStop              // EOF, an error, or bytes waiting for dst to drain
)

// pump moves one direction from src to dst on the bare sockets, through
// their RawConns so every wait happens in Go's netpoller. Its fields belong
// to the goroutine running it; the callbacks run synchronously in it.
type pump struct {
	c        *conn
	cp       *copier
	src, dst *net.TCPConn
	toClient bool // direction: backend → client
	srcRaw   syscall.RawConn
	dstRaw   syscall.RawConn
	dstFD    int // valid while the pump runs: dst is closed only after it returns

	splice bool // may splice
	probe  bool // start each wakeup with a read, not a splice
	bulk   bool // inside a burst: splice

	pipe     *pipe
	inPipe   int
	noPipe   bool // pipe creation failed; copy until the next wait
	burst    int
	buf      *[bufSize]byte
	bufOff   int
	bufEnd   int
	n        int64 // bytes written to dst
	flushed  int64 // bytes already added to the backend's counters
	eof      bool
	rerr     error
	werr     error
	readable func(uintptr) bool
	writable func(uintptr) bool
}

func (p *pump) init(mode copyMode) error {
	switch mode {
	case copySplice:
		p.splice, p.bulk = true, true
	case copyBuffer:
		p.probe = true
	default:
		p.splice, p.probe = true, true
	}
	var err error
	if p.srcRaw, err = p.src.SyscallConn(); err != nil {
		return err
	}
	if p.dstRaw, err = p.dst.SyscallConn(); err != nil {
		return err
	}
	var fd uintptr
	if err := p.dstRaw.Control(func(f uintptr) { fd = f }); err != nil {
		return err
	}
	p.dstFD = int(fd)
	p.readable, p.writable = p.onReadable, p.onWritable
	return nil
}

// run copies until src's EOF (nil) or an error, which is wrapped with the
// side that failed so the caller can tell a read from a write.
func (p *pump) run() error {
	defer p.release()
	for {
		if err := p.srcRaw.Read(p.readable); err != nil && p.rerr == nil {
			p.rerr = err
		}
		if p.pending() && p.rerr == nil && p.werr == nil {
			if err := p.dstRaw.Write(p.writable); err != nil && p.werr == nil {
				p.werr = err
			}
		}
		switch {
		case p.werr != nil:
			return &sideError{op: "write", side: p.dstSide(), err: p.werr}
		case p.rerr != nil:
			return &sideError{op: "read", side: p.srcSide(), err: p.rerr}
		case p.eof:
			return nil
		case p.c.isAborted():
			return errAborted
		}
	}
}

// onReadable runs whenever src may have data. Returning false parks the
// goroutine until src is readable again, without another syscall.
func (p *pump) onReadable(fd uintptr) bool {
	for !p.c.isAborted() {
		var s step
		if p.bulk && !p.noPipe {
			s = p.spliceIn(int(fd))
		} else {
			s = p.recvIn(int(fd))
		}
		switch s {
		case stepPark:
			p.noPipe = false
			return false
		case stepStop:
			return true
		}
	}
	return true
}

// onWritable runs whenever dst may take more; false waits for it.
func (p *pump) onWritable(uintptr) bool {
	return p.writeOut() || p.werr != nil || p.c.isAborted()
}

// spliceIn moves what src holds into a pipe and on to dst.
func (p *pump) spliceIn(fd int) step {
	if p.pipe == nil {
		pp, err := p.cp.pipes.get()
		if err != nil {
			// No pipe now (EMFILE, ENFILE, the per-user budget): this
			// transfer goes through a buffer instead of failing.
			p.noPipe = true
			return stepAgain
		}
		p.pipe = pp
	}
	n, err := unix.Splice(fd, nil, p.pipe.w, nil, p.pipe.size, spliceFlags)
	switch {
	case err == unix.EINTR:
		return stepAgain
	case err == unix.EAGAIN:
		// Drained: the empty pipe goes back, so an idle connection
		// holds none. A short burst means small messages again.
		p.cp.pipes.put(p.pipe)
		p.pipe = nil
		if p.probe && p.burst < bulkMin {
			p.bulk = false
		}
		p.burst = 0
		return stepPark
	case err != nil:
		p.rerr = err
		return stepStop
	case n == 0:
		p.eof = true
		return stepStop
	}
	p.inPipe = int(n)
	p.burst += int(n)
	if !p.writeOut() {
		return stepStop
	}
	return stepAgain
}

// recvIn reads into a pooled buffer and writes it on. A full buffer means
// a burst worth splicing. A short read still needs one more read that says
// EAGAIN before parking: Go's netpoller drops the epoll event mask, so a
// FIN or RST that arrived with the data would otherwise go unseen. (TCP_INQ
// reports a pending FIN but not an RST, which we measured the hard way.)
func (p *pump) recvIn(fd int) step {
	if p.buf == nil {
		p.buf = p.cp.bufs.Get().(*[bufSize]byte)
	}
	n, err := unix.Read(fd, p.buf[:])
	switch {
	case err == unix.EINTR:
		return stepAgain
	case err == unix.EAGAIN:
		p.putBuf()
		return stepPark
	case err != nil:
		p.rerr = err
		return stepStop
	case n == 0:
		p.eof = true
		return stepStop
	}
	p.bufOff, p.bufEnd = 0, n
	if !p.writeOut() {
		return stepStop
	}
	if p.splice && !p.noPipe && n == bufSize {
		p.putBuf()
		p.bulk = true
	}
	return stepAgain
}

// writeOut writes what is pending to dst; false if dst is full or failed.
func (p *pump) writeOut() bool {
	for p.inPipe > 0 {
		n, err := unix.Splice(p.pipe.r, nil, p.dstFD, nil, p.inPipe, spliceFlags)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return false
		case err != nil:
			p.werr = err
			return false
		case n == 0:
			p.werr = io.ErrShortWrite
			return false
		}
		p.inPipe -= int(n)
		p.count(int(n))
	}
	for p.bufOff < p.bufEnd {
		n, err := unix.Write(p.dstFD, p.buf[p.bufOff:p.bufEnd])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return false
		case err != nil:
			p.werr = err
			return false
		case n == 0:
			p.werr = io.ErrShortWrite
			return false
		}
		p.bufOff += n
		p.count(n)
	}
	return true
}

func (p *pump) pending() bool { return p.inPipe > 0 || p.bufOff < p.bufEnd }

// count adds n written bytes, exactly as the syscalls returned them.
func (p *pump) count(n int) {
	p.n += int64(n)
	if p.n-p.flushed >= flushEvery {
		p.flush()
	}
}

// flush adds the bytes not yet counted to the backend's counters.
func (p *pump) flush() {
	d := p.n - p.flushed
	if d == 0 {
		return
	}
	p.flushed = p.n
	if p.toClient {
		p.c.b.AddBytes(0, d)
	} else {
		p.c.b.AddBytes(d, 0)
	}
}

func (p *pump) putBuf() {
	if p.buf != nil {
		p.cp.bufs.Put(p.buf)
		p.buf, p.bufOff, p.bufEnd = nil, 0, 0
	}
}

// release gives back what the pump still holds. A pipe that may hold bytes
// is closed, never pooled.
func (p *pump) release() {
	if p.pipe != nil {
		if p.inPipe > 0 {
			p.pipe.close()
		} else {
			p.cp.pipes.put(p.pipe)
		}
		p.pipe, p.inPipe = nil, 0
	}
	p.putBuf()
	p.flush()
}

// runStdlib is the standard library's path: io.Copy between bare
// *net.TCPConn, which splices through a pipe pinned for the direction's life.
func (p *pump) runStdlib() error {
	n, err := io.Copy(p.dst, p.src)
	p.n = n
	p.flush()
	if err != nil {
		if p.c.isAborted() {
			return errAborted
		}
		// Go's splice does not say which socket failed.
		return &sideError{op: "copy", side: p.srcSide(), err: err}
	}
	return nil
}

func (p *pump) srcSide() string { return sideName(p.toClient) }
func (p *pump) dstSide() string { return sideName(!p.toClient) }

func sideName(backend bool) string {
	if backend {
		return "backend"
	}
	return "client"
}
