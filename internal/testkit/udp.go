package testkit

import (
	"errors"
	"net"
	"testing"
)

// UDPServer runs a UDP server on 127.0.0.1 that answers each datagram with
// answer(datagram), or not at all when answer returns nil, until the test
// ends. It returns the server's address. The datagram answer is given is
// reused for the next one: answer must not keep it.
func UDPServer(t testing.TB, answer func(datagram []byte) []byte) string {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("listen on UDP loopback: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1<<16)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err == nil {
				if out := answer(buf[:n]); out != nil {
					_, _ = c.WriteToUDPAddrPort(out, from)
				}
			}
		}
	}()
	t.Cleanup(func() {
		c.Close()
		<-done
	})
	return c.LocalAddr().String()
}
