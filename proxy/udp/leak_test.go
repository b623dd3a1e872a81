//go:build linux

package udp

import (
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tierlb/tierlb/backends"
	"github.com/tierlb/tierlb/internal/testkit"
)

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// Sessions come and go 100,000 times (responses: 1 ends each after its
// reply); afterwards the service holds the descriptors and memory it held
// after the first few thousand.
func TestNoGrowthAfterManySessions(t *testing.T) {
	total := 100_000
	if testing.Short() {
		total = 10_000
	}
	const clients = 8
	a := startBackend(t, "udp4", "127.0.0.1:0", "a", false)
	b := startBackend(t, "udp4", "127.0.0.1:0", "b", false)
	h := serve(t, Config{Responses: 1}, newSet(t, backends.RoundRobin, a, b), 2)
	h.log.discardLines()
	conns := make([]*udpClient, clients)
	for i := range conns {
		conns[i] = &udpClient{c: dial(t, h.addr()), buf: make([]byte, 256)}
	}
	run := func(n int) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		for i, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range n / clients {
					if err := c.roundTrip(fmt.Sprintf("c%d-%d", i, j)); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		testkit.Eventually(t, 10*time.Second, "every session to end", func() bool { return h.svc.Active() == 0 })
		// A loop closes the sockets of the sessions that ended at the end
		// of the wakeup, before it runs this.
		h.svc.call(func(*listener) {})
	}
	run(total / 20) // warm up: recycled sessions and maps at their size
	// Spare sockets (spare.go) are as many as sessions ran at once.
	fds, heap := testkit.OpenFDs(t)-spareCount(h), heapInUse()
	t0 := time.Now()
	run(total)
	resends := 0
	for _, c := range conns {
		resends += c.resends
	}
	t.Logf("%d sessions in %v, %d queries sent again", total, time.Since(t0), resends)
	if now := testkit.OpenFDs(t) - spareCount(h); now != fds {
		t.Errorf("open descriptors other than spare sockets %d after %d sessions, %d before", now, total, fds)
	}
	if now := heapInUse(); now > heap+4<<20 {
		t.Errorf("heap in use grew from %d to %d bytes over %d sessions", heap, now, total)
	}
	h.svc.call(func(l *listener) {
		if len(l.sessions) != 0 || l.expiry.head != nil || len(l.lp.free) > maxFreeSessions {
			t.Errorf("loop holds %d sessions, %d free", len(l.sessions), len(l.lp.free))
		}
	})
	var started float64
	for _, id := range []string{"a", "b"} {
		started += value(t, h.reg, "tierlb_udp_sessions_total", map[string]string{"service": "dns", "backend": id})
	}
	if want := float64(total/20/clients*clients + total/clients*clients); started != want {
		t.Errorf("sessions_total %v, want %v", started, want)
	}
}

// udpClient sends a query and waits for its answer, resending on a loaded
// machine's rare drop; like a DNS client it skips late answers to earlier
// queries.
type udpClient struct {
	c       *net.UDPConn
	buf     []byte
	resends int
}

func (c *udpClient) roundTrip(msg string) error {
	for try := range 5 {
		if try > 0 {
			c.resends++
		}
		if _, err := c.c.Write([]byte(msg)); err != nil {
			return err
		}
		_ = c.c.SetReadDeadline(time.Now().Add(2 * time.Second))
		for {
			n, err := c.c.Read(c.buf)
			if err != nil {
				break
			}
			reply := string(c.buf[:n])
			if len(reply) > 2 && reply[2:] == msg {
				return nil
			}
			if !strings.HasPrefix(reply[2:], msg[:strings.IndexByte(msg, '-')+1]) {
				return fmt.Errorf("reply %q to %q: another client's", reply, msg)
			}
		}
	}
	return fmt.Errorf("no reply to %q", msg)
}

// A datagram on an open session allocates nothing in the data path: the
// whole process allocates less than one object per hundred round trips
// (the clients and backends here allocate nothing per datagram either).
func TestNoAllocationPerDatagram(t *testing.T) {
	a := startBackend(t, "udp4", "127.0.0.1:0", "a", true)
	h := serve(t, Config{}, newSet(t, backends.RoundRobin, a), 1)
	c := dial(t, h.addr())
	msg, buf := []byte("ping"), make([]byte, 64)
	trip := func() {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Minute))
	for range 100 {
		trip()
	}
	const n = 5000
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		trip()
	}
	runtime.ReadMemStats(&after)
	if allocs := after.Mallocs - before.Mallocs; allocs > n/100 {
		t.Fatalf("%d allocations over %d round trips", allocs, n)
	}
}
