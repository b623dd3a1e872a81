package proxy

import (
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// The benchmarks compare zero_copy on and off with no proxy at all, on
// loopback:
//
//	go test -run '^$' -bench . -benchmem ./proxy/
//
// Loopback makes the proxy's own cost a large share of the total, which is
// what these are for; bench/ measures whole proxies against each other.

// BenchmarkPingPong is the small-request pattern: one connection, a 64-byte
// message and its echo per op.
func BenchmarkPingPong(b *testing.B) {
	for _, mode := range benchModes {
		b.Run(mode.name, func(b *testing.B) {
			be := startBackend(b, echo)
			c := benchDial(b, be, mode.direct, mode.zeroCopy)
			msg := make([]byte, 64)
			buf := make([]byte, 64)
			b.ReportAllocs()
			defer reportCPU(b)()
			b.ResetTimer()
			for range b.N {
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBulk streams 1 MiB per op from client to backend.
func BenchmarkBulk(b *testing.B) {
	const chunk = 1 << 20
	for _, mode := range benchModes {
		b.Run(mode.name, func(b *testing.B) {
			got := make(chan int64, 1)
			be := startBackend(b, func(c net.Conn) {
				n, _ := io.Copy(io.Discard, c)
				got <- n
			})
			c := benchDial(b, be, mode.direct, mode.zeroCopy)
			buf := make([]byte, chunk)
			b.SetBytes(chunk)
			b.ReportAllocs()
			defer reportCPU(b)()
			b.ResetTimer()
			for range b.N {
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			c.CloseWrite()
			select {
			case n := <-got:
				if n != int64(b.N)*chunk {
					b.Fatalf("backend got %d bytes, want %d", n, int64(b.N)*chunk)
				}
			case <-time.After(30 * time.Second):
				b.Fatal("backend did not get everything")
			}
		})
	}
}

// BenchmarkAcceptToDial is a new connection per op: accept, pick, dial,
// one byte back to the client, close. The direct row is the test's own
// client and backend: subtract it for the proxy's allocations.
func BenchmarkAcceptToDial(b *testing.B) {
	for _, mode := range benchModes {
		b.Run(mode.name, func(b *testing.B) {
			be := startBackend(b, func(c net.Conn) { c.Write([]byte{1}) })
			addr := be.addr()
			if !mode.direct {
				s := startService(b, Config{ZeroCopy: mode.zeroCopy}, staticSet(b, be.addr()))
				addr = s.Addr().String()
			}
			one := make([]byte, 1)
			b.ReportAllocs()
			defer reportCPU(b)()
			b.ResetTimer()
			for range b.N {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, one); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}

// benchModes are the copy modes and, as the ceiling, direct: the client
// talks to the backend without a proxy.
var benchModes = []struct {
	name     string
	direct   bool
	zeroCopy bool
}{
	{name: "direct", direct: true},
	{name: "zero_copy", zeroCopy: true},
	{name: "copy"},
}

// benchDial connects to the backend, through a proxy in mode unless direct.
func benchDial(b *testing.B, be *testBackend, direct, zeroCopy bool) *net.TCPConn {
	b.Helper()
	addr := be.addr()
	if !direct {
		s := startService(b, Config{ZeroCopy: zeroCopy}, staticSet(b, be.addr()))
		addr = s.Addr().String()
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// reportCPU adds the process's CPU time per op (user + system, client and
// backend included): on a shared machine it is steadier than wall time, and
// the direct row gives the share that is not the proxy's.
func reportCPU(b *testing.B) func() {
	t0 := cpuTime()
	return func() {
		b.ReportMetric(float64((cpuTime()-t0).Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
