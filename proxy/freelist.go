//go:build linux

package proxy

import "time"

// A loop recycles what its connections borrow, so that serving a
// connection allocates nothing once the loop is warm. Nothing here is
// shared: each loop has its own lists.
const (
	maxFreeConns = 1024 // connection and dial structs kept
	maxFreeBufs  = 16   // idle pending buffers kept
	maxFreePipes = 16   // idle pipes kept while bursts come and go
	// pipeIdle: a loop whose pipes have neither been lent nor returned for
	// this long closes its idle ones. An unprivileged user's pipe budget
	// (fs.pipe-user-pages-soft, 64 MiB) counts pipes by capacity, idle or
	// not, and every loop of every service keeps its own: 16 idle 256 KiB
	// pipes on each of 2 loops of 3 services would hold 24 MiB of it.
	pipeIdle = time.Second
)

// freeLists are one loop's recycled structs, buffers and pipes.
type freeLists struct {
	conns    []*conn
	dials    []*dialState
	bufs     []*[bufSize]byte
	pipes    []*pipe
	pipeUsed int64 // loop clock of the last pipe lent or returned
}

// getBuf lends a buffer for bytes the destination did not take yet.
func (l *loop) getBuf() *[bufSize]byte {
	f := &l.free
	if n := len(f.bufs); n > 0 {
		b := f.bufs[n-1]
		f.bufs = f.bufs[:n-1]
		return b
	}
	return new([bufSize]byte)
}

func (l *loop) putBuf(b *[bufSize]byte) {
	if len(l.free.bufs) < maxFreeBufs {
		l.free.bufs = append(l.free.bufs, b)
	}
}

// getPipe lends an empty pipe for a burst.
func (l *loop) getPipe() (*pipe, error) {
	f := &l.free
	f.pipeUsed = l.el.Now
	if n := len(f.pipes); n > 0 {
		p := f.pipes[n-1]
		f.pipes = f.pipes[:n-1]
		return p, nil
	}
	return newPipe()
}

// putPipe takes back an empty pipe. A pipe that may still hold bytes must
// be closed instead.
func (l *loop) putPipe(p *pipe) {
	f := &l.free
	f.pipeUsed = l.el.Now
	if len(f.pipes) < maxFreePipes && !l.el.Stopping() {
		f.pipes = append(f.pipes, p)
		return
	}
	p.close()
}

// pipesIdleUntil is the loop clock at which the idle pipes are closed,
// -1 if there are none.
func (f *freeLists) pipesIdleUntil() int64 {
	if len(f.pipes) == 0 {
		return -1
	}
	return f.pipeUsed + int64(pipeIdle)
}

// trimPipes closes the idle pipes once no burst has used one for
// pipeIdle.
func (l *loop) trimPipes() {
	if t := l.free.pipesIdleUntil(); t >= 0 && l.el.Now >= t {
		l.free.closePipes()
	}
}

func (f *freeLists) closePipes() {
	for i, p := range f.pipes {
		p.close()
		f.pipes[i] = nil
	}
	f.pipes = f.pipes[:0]
}

func (l *loop) getDial() *dialState {
	f := &l.free
	if n := len(f.dials); n > 0 {
		d := f.dials[n-1]
		f.dials = f.dials[:n-1]
		return d
	}
	return new(dialState)
}

func (l *loop) putDial(d *dialState) {
	*d = dialState{}
	if len(l.free.dials) < maxFreeConns {
		l.free.dials = append(l.free.dials, d)
	}
}
