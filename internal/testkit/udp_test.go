package testkit

import (
	"net"
	"testing"
	"time"
)

func TestUDPServerAnswersAndStaysSilent(t *testing.T) {
	addr := UDPServer(t, func(d []byte) []byte {
		if string(d) == "quiet" {
			return nil
		}
		return append([]byte("re: "), d...)
	})
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64)
	if _, err := c.Write([]byte("quiet")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	// Loopback keeps order: had "quiet" been answered, it would come first.
	if got := string(buf[:n]); got != "re: hello" {
		t.Fatalf("answer %q; want %q", got, "re: hello")
	}
}
