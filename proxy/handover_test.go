//go:build linux

package proxy

import (
	"bytes"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// TestListenFileBesideInherited: a service takes its sockets from files,
// one inherited from another service (which then stops accepting) and one
// bound by ListenFile, and serves on both.
func TestListenFileBesideInherited(t *testing.T) {
	be := startBackend(t, echo)
	pools := staticSet(t, be.addr())
	donor := startService(t, Config{}, pools)
	inherited, err := donor.Files()
	if err != nil || len(inherited) != 1 {
		t.Fatalf("Files: %d, %v", len(inherited), err)
	}
	fresh, err := ListenFile("127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	freshAddr, err := net.FileListener(fresh)
	if err != nil {
		t.Fatal(err)
	}
	addrs := []string{donor.Addr().String(), freshAddr.Addr().String()}
	freshAddr.Close()
	s, err := NewService(Config{Name: "taker", Listen: "127.0.0.1:0"}, pools, Options{})
	if err != nil {
		t.Fatal(err)
	}
	files := []*os.File{inherited[0], fresh}
	if err := s.ListenFiles(files); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		f.Close()
	}
	serveService(t, s)
	donor.StopAccepting()
	for _, a := range addrs {
		c, err := net.DialTimeout("tcp", a, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 4)
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, []byte("ping")) {
			t.Fatalf("through %s: %q, %v", a, got, err)
		}
		c.Close()
	}
}
