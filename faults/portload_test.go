package faults

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Client ports: the load binds each connection to the next port of this
// range itself, with SO_REUSEADDR. Its connections close first, so each
// leaves its own socket in TIME_WAIT in the host's namespace; the kernel's
// own choice of port would then run this client out of ports at 470/s
// (tcp_tw_reuse 2 reuses ports only over loopback). A port bound by the
// application is taken again over a TIME_WAIT socket whose connection had
// timestamps (tcp_twsk_unique), and PAWS keeps the old segments out; with
// 12,000 ports at 2,000/s each port comes round every 6 s. The range sits
// below the ephemeral one, away from ports the kernel hands out.
const (
	clientPortLow  = 20000
	clientPortHigh = 31999
)

// portLoad opens rate connections per second to addr from source address
// src, for dur at most and rate×dur connections at most. Each connection
// sends 8 bytes, reads them back and closes first, with a FIN.
type portLoad struct {
	src, addr   string
	start       time.Time
	done        chan struct{}
	next        atomic.Int64
	portsBusy   atomic.Int64
	total, fail atomic.Int64

	mu         sync.Mutex
	firstErr   error
	firstAfter time.Duration
	took       time.Duration
}

func startPortLoad(src, addr string, rate int, dur time.Duration) *portLoad {
	l := &portLoad{src: src, addr: addr, start: time.Now(), done: make(chan struct{})}
	count := int(float64(rate) * dur.Seconds())
	tokens := make(chan struct{}, 1024)
	// The pacer hands out tokens at rate, never more than count in all and
	// none after dur: workers that fall behind lower the rate (measured by
	// the caller), they never raise it nor stretch the time.
	go func() {
		defer close(tokens)
		stop := time.After(dur)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		sent := 0
		for sent < count {
			select {
			case <-stop:
				return
			case now := <-tick.C:
				due := min(count, int(float64(rate)*now.Sub(l.start).Seconds()))
				for ; sent < due; sent++ {
					select {
					case tokens <- struct{}{}:
					case <-stop:
						return
					}
				}
			}
		}
	}()
	var wg sync.WaitGroup
	for range 256 { // enough for 2,000/s at 100 ms a connection
		wg.Go(func() {
			for range tokens {
				l.one()
			}
		})
	}
	go func() {
		wg.Wait()
		l.mu.Lock()
		l.took = time.Since(l.start)
		l.mu.Unlock()
		close(l.done)
	}()
	return l
}

// wait reports whether the load is over, waiting up to d.
func (l *portLoad) wait(d time.Duration) bool {
	select {
	case <-l.done:
		return true
	case <-time.After(d):
		return false
	}
}

func (l *portLoad) summary() (total, failed int, firstErr string, firstAfter, took time.Duration) {
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.firstErr != nil {
		firstErr = l.firstErr.Error()
	}
	return int(l.total.Load()), int(l.fail.Load()), firstErr, l.firstAfter, l.took
}

// one makes one connection; a failure is counted with its time.
func (l *portLoad) one() {
	l.total.Add(1)
	if err := l.exchange(); err != nil {
		l.fail.Add(1)
		l.mu.Lock()
		if l.firstErr == nil {
			l.firstErr, l.firstAfter = err, time.Since(l.start)
		}
		l.mu.Unlock()
	}
}

func (l *portLoad) exchange() error {
	c, err := l.dial()
	if err != nil {
		return err
	}
	defer c.Close() // no data left unread: a FIN, not an RST
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	msg := []byte("ports!\r\n")
	if _, err := c.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err // tierlb closes a client whose backend it cannot dial
	}
	return nil
}

// dial connects from the next client port; a port some other socket
// holds is skipped.
func (l *portLoad) dial() (net.Conn, error) {
	var err error
	for range 20 {
		port := clientPortLow + int(l.next.Add(1)%(clientPortHigh-clientPortLow+1))
		d := net.Dialer{
			Timeout:   10 * time.Second,
			LocalAddr: &net.TCPAddr{IP: net.ParseIP(l.src), Port: port},
			Control: func(_, _ string, rc syscall.RawConn) error {
				var serr error
				if err := rc.Control(func(fd uintptr) {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
				}); err != nil {
					return err
				}
				return serr
			},
		}
		var c net.Conn
		if c, err = d.Dial("tcp", l.addr); err == nil {
			return c, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, err
		}
		l.portsBusy.Add(1)
	}
	return nil, err
}
