//go:build linux

package proxy

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestAcceptedSocketInheritsNoDelay checks what accepting relies on: the
// kernel copies TCP_NODELAY, like the leg options, from a listener to the
// sockets it accepts, so the loops never set it per connection.
func TestAcceptedSocketInheritsNoDelay(t *testing.T) {
	ln, err := listen(t.Context(), "127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	rc, err := ln.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = setAcceptOptions(int(fd)) }); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Go's Accept sets TCP_NODELAY itself; accept raw to see the kernel's.
	lf, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	fd, _, err := unix.Accept(int(lf.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if v, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY); err != nil || v != 1 {
		t.Errorf("accepted socket: TCP_NODELAY = %d, %v; want 1", v, err)
	}
	for _, o := range legOptions() {
		if v, err := unix.GetsockoptInt(fd, o.level, o.name); err != nil || v != o.value {
			t.Errorf("accepted socket: option %d/%d = %d, %v; want %d", o.level, o.name, v, err, o.value)
		}
	}
}
