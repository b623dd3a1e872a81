//go:build linux

package proxy

import (
	"os"
)

// Each connection has at most one entry in its loop's timer heap: the
// connect deadline while dialing, then the next moment its idle or
// half-close deadline could pass. Moving bytes only stores the loop's clock
// in c.last; the entry is checked lazily when it comes due and pushed back
// if traffic moved the real deadline, so a busy connection costs one heap
// operation per idle period instead of one per transfer, and no syscall.

// schedule sets c's deadline to when (loop clock, ns).
func (l *loop) schedule(c *conn, when int64) {
	c.when = when
	if c.heapIdx >= 0 {
		l.fix(int(c.heapIdx))
		return
	}
	c.heapIdx = int32(len(l.timers))
	l.timers = append(l.timers, c)
	l.up(len(l.timers) - 1)
}

// unschedule removes c's deadline.
func (l *loop) unschedule(c *conn) {
	i := int(c.heapIdx)
	if i < 0 {
		return
	}
	last := len(l.timers) - 1
	if i != last {
		l.swap(i, last)
	}
	l.timers[last] = nil
	l.timers = l.timers[:last]
	c.heapIdx = -1
	if i != last {
		l.fix(i)
	}
}

// expire runs the deadlines that are due, and closes idle pipes that have
// not been used for pipeIdle.
func (l *loop) expire() {
	for len(l.timers) > 0 && l.timers[0].when <= l.el.Now {
		c := l.timers[0]
		l.unschedule(c)
		l.onTimer(c)
	}
	if len(l.paused) > 0 {
		l.resumeDue()
	}
	l.trimPipes()
}

// onTimer handles a due deadline.
func (l *loop) onTimer(c *conn) {
	switch c.state {
	case stateHeader:
		l.headerFailed(c, os.ErrDeadlineExceeded)
	case stateHello:
		l.helloTimedOut(c)
	case stateWaiting:
		l.firstDataTimedOut(c)
	case stateResolving, stateConnecting:
		l.connectTimedOut(c)
	case stateOpen:
		if !c.legSet && l.el.Now >= c.start+int64(legOptionsAfter) {
			l.setBackendLegOptions(c)
		}
		if c.halfAt != 0 && l.el.Now >= c.halfAt {
			l.finish(c) // the first closer's reason stands
			return
		}
		idle := int64(c.cfg.Timeouts.idle())
		if l.el.Now-c.last >= idle {
			c.setEnd(EndIdleTimeout)
			l.finish(c)
			return
		}
		l.scheduleIdle(c)
	}
}

// scheduleIdle arms the next idle or half-close check, or the moment the
// backend socket gets the leg options.
func (l *loop) scheduleIdle(c *conn) {
	next := c.last + int64(c.cfg.Timeouts.idle())
	if c.halfAt != 0 {
		next = min(next, c.halfAt)
	}
	if !c.legSet {
		next = min(next, c.start+int64(legOptionsAfter))
	}
	l.schedule(c, next)
}

// nextDeadline is the loop clock of the next deadline, -1 if none.
func (l *loop) nextDeadline() int64 {
	next := int64(-1)
	if len(l.timers) > 0 {
		next = l.timers[0].when
	}
	if t := l.resumeNext(); t >= 0 && (next < 0 || t < next) {
		next = t
	}
	if t := l.free.pipesIdleUntil(); t >= 0 && (next < 0 || t < next) {
		next = t
	}
	return next
}

func (l *loop) less(i, j int) bool { return l.timers[i].when < l.timers[j].when }

func (l *loop) swap(i, j int) {
	t := l.timers
	t[i], t[j] = t[j], t[i]
	t[i].heapIdx = int32(i)
	t[j].heapIdx = int32(j)
}

func (l *loop) fix(i int) {
	if !l.down(i) {
		l.up(i)
	}
}

func (l *loop) up(j int) {
	for j > 0 {
		i := (j - 1) / 2
		if !l.less(j, i) {
			break
		}
		l.swap(i, j)
		j = i
	}
}

func (l *loop) down(i0 int) bool {
	i, n := i0, len(l.timers)
	for {
		j := 2*i + 1
		if j >= n {
			break
		}
		if r := j + 1; r < n && l.less(r, j) {
			j = r
		}
		if !l.less(j, i) {
			break
		}
		l.swap(i, j)
		i = j
	}
	return i > i0
}
