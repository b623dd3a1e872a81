package main

import (
	"context"
	"net"
	"sync/atomic"
	"time"
)

// DefaultLameDuck is how long whoami keeps serving after SIGTERM. A load
// balancer learns of the stop only after the signal: tierlb drains at the
// engine's kill event, a fraction of a millisecond after it on an idle
// engine and tens of milliseconds on a busy one, and a connection it dialed
// just before the drain may take as long again to send its first byte.
// Three seconds covers that with a wide margin, and also a Swarm task
// relist (docker.swarm_poll, 1s), while staying well inside Docker's
// default 10s stop timeout.
const DefaultLameDuck = 3 * time.Second

// lameDuck closes ln d after ctx ends, having marked the server lame at
// once. While lame the server still accepts and answers: the balancer in
// front may have sent a connection just before it heard of the stop.
type lameDuck struct {
	on atomic.Bool
}

// arm schedules the lame period; the returned stop undoes it if ctx has not
// ended yet.
func (l *lameDuck) arm(ctx context.Context, d time.Duration, ln net.Listener) (stop func() bool) {
	return context.AfterFunc(ctx, func() {
		l.on.Store(true)
		if d <= 0 {
			ln.Close()
			return
		}
		time.AfterFunc(d, func() { ln.Close() })
	})
}

// lame reports whether ctx has ended and the listener is about to close.
func (l *lameDuck) lame() bool { return l.on.Load() }
