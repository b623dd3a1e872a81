//go:build linux

package proxy

import (
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestAcceptOptions: a service's listener carries TCP_NODELAY and no
// accept deferral, a Front's both; a Front's socket taken over by a plain
// service loses the deferral, whoever bound it.
func TestAcceptOptions(t *testing.T) {
	svc := startService(t, Config{}, staticSet(t, "127.0.0.1:1"))
	front, err := NewFront(Config{Name: "front", Listen: "127.0.0.1:0"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := front.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { front.Shutdown(t.Context()) })

	check := func(t *testing.T, files []*os.File, ferr error, wantDefer int) {
		t.Helper()
		if ferr != nil || len(files) != 1 {
			t.Fatalf("Files: %d, %v", len(files), ferr)
		}
		defer files[0].Close()
		fd := int(files[0].Fd())
		if v, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY); err != nil || v != 1 {
			t.Errorf("TCP_NODELAY = %d, %v; want 1", v, err)
		}
		if v, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT); err != nil || v != wantDefer {
			t.Errorf("TCP_DEFER_ACCEPT = %d, %v; want %d", v, err, wantDefer)
		}
	}
	t.Run("service", func(t *testing.T) {
		files, err := svc.Files()
		check(t, files, err, 0)
	})
	t.Run("front", func(t *testing.T) {
		files, err := front.Files()
		check(t, files, err, 1)
	})
	t.Run("front taken over by a service", func(t *testing.T) {
		files, err := front.Files()
		if err != nil {
			t.Fatal(err)
		}
		defer files[0].Close()
		taker, err := NewService(Config{Name: "taker", Listen: "127.0.0.1:0"}, staticSet(t, "127.0.0.1:1"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := taker.ListenFiles(files); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { taker.Shutdown(t.Context()) })
		files, err = taker.Files()
		check(t, files, err, 0)
	})
}

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
	if err := rc.Control(func(fd uintptr) { serr = setAcceptOptions(int(fd), false) }); err != nil || serr != nil {
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
