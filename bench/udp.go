package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"time"
)

// The UDP scenarios: DNS-style queries from many clients at once (enough
// datagrams arrive together to fill a proxy's batches), each query a session
// of its own (tierlb udp.responses: 1, nginx proxy_responses 1), against
// `whoami --dns`; and one steady iperf3 -u stream at a fixed rate, where a
// proxy that wakes up for every datagram pays for it.

// udpMaxQPS bounds the query load in count: each client stops after its
// share of udpMaxQPS × the run's seconds, and each has one query in flight.
const udpMaxQPS = 200_000

// udpQueryTimeout is how long an answer may take before it counts as lost.
const udpQueryTimeout = 500 * time.Millisecond

// txtQuery is a DNS TXT question for "whoami" with the given ID.
func txtQuery(id uint16) []byte {
	q := []byte{0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 6, 'w', 'h', 'o', 'a', 'm', 'i', 0, 0, 16, 0, 1}
	binary.BigEndian.PutUint16(q, id)
	return q
}

// answers reports whether b is the answer to query id.
func answers(b []byte, id uint16) bool {
	return len(b) >= 12 && binary.BigEndian.Uint16(b) == id && b[2]&0x80 != 0
}

type queryResult struct {
	answered, lost int
	seconds        float64
}

// runQueries keeps one query in flight on each of n client sockets for d,
// at most udpMaxQPS×d queries in all.
func runQueries(ctx context.Context, addr string, n int, d time.Duration) (queryResult, error) {
	var (
		mu       sync.Mutex
		total    queryResult
		firstErr error
		wg       sync.WaitGroup
	)
	perClient := max(1, int(float64(udpMaxQPS)*d.Seconds())/n)
	start := time.Now()
	end := start.Add(d)
	for i := range n {
		wg.Go(func() {
			var r queryResult
			err := queryLoop(ctx, addr, uint16(i<<10), perClient, end, &r)
			mu.Lock()
			defer mu.Unlock()
			total.answered += r.answered
			total.lost += r.lost
			if err != nil && firstErr == nil {
				firstErr = err
			}
		})
	}
	wg.Wait()
	total.seconds = time.Since(start).Seconds()
	return total, firstErr
}

// queryLoop is one client: a query, its answer (or a timeout), the next.
func queryLoop(ctx context.Context, addr string, id uint16, limit int, end time.Time, r *queryResult) error {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, 512)
	for n := 0; n < limit && time.Now().Before(end) && ctx.Err() == nil; n++ {
		id++
		if _, err := c.Write(txtQuery(id)); err != nil {
			r.lost++
			continue
		}
		if err := c.SetReadDeadline(time.Now().Add(udpQueryTimeout)); err != nil {
			return err
		}
		for {
			m, err := c.Read(buf)
			if err != nil {
				r.lost++
				break
			}
			if answers(buf[:m], id) {
				r.answered++
				break
			}
		}
	}
	return nil
}

// waitAnswer waits until a query to addr is answered.
func waitAnswer(ctx context.Context, addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		var r queryResult
		err := queryLoop(ctx, addr, 1, 1, time.Now().Add(time.Second), &r)
		if err == nil && r.answered == 1 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("no DNS answer from %s within %s (err %v)", addr, within, err)
		}
	}
}

func runUDPQueries(ctx context.Context, e *env, r *running) (outcome, error) {
	var o outcome
	if err := waitAnswer(ctx, r.dnsAddr, 10*time.Second); err != nil {
		return o, err
	}
	before := r.cpuTicks()
	res, err := runQueries(ctx, r.dnsAddr, e.opts.UDPClients, e.opts.Duration)
	cpu := cpuSeconds(r.cpuTicks() - before)
	if err == nil {
		err = r.alive()
	}
	if err != nil {
		return o, err
	}
	if res.answered == 0 {
		return o, fmt.Errorf("udp queries: none answered of %d", res.lost)
	}
	o.set("qps", float64(res.answered)/res.seconds)
	o.set("lost", float64(res.lost))
	if res.lost > 0 {
		o.note("%d of %d queries unanswered within %s", res.lost, res.lost+res.answered, udpQueryTimeout)
	}
	// Each answered query is two datagrams through the proxy: the query and
	// its answer.
	if r.t.Proxy {
		o.setPerUnit("cpu_per_100k", cpu, float64(2*res.answered), 1e5)
	}
	return o, nil
}

func runUDPStream(ctx context.Context, e *env, r *running) (outcome, error) {
	var o outcome
	before := r.cpuTicks()
	res, err := runIperf(ctx, e, r.iperfAddr, e.opts.Duration, &udpStream{Rate: e.opts.UDPRate, Len: e.opts.UDPLen})
	cpu := cpuSeconds(r.cpuTicks() - before)
	if err == nil {
		err = r.alive()
	}
	if err != nil {
		return o, err
	}
	o.set("mbps", res.MBps())
	if total := res.Datagrams + res.Lost; total > 0 {
		o.set("loss_pct", 100*res.Lost/total)
	}
	// Per datagram that reached the server: one the proxy dropped cost it
	// something and counts nothing.
	if r.t.Proxy {
		o.setPerUnit("cpu_per_100k", cpu, res.Datagrams, 1e5)
	}
	return o, nil
}
