package testkit

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// OpenFDs counts the process's open descriptors, for leak checks.
func OpenFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// RingFDs lists the process's io_uring descriptors.
func RingFDs(t testing.TB) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var fds []int
	for _, e := range ents {
		link, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err == nil && link == "anon_inode:[io_uring]" {
			fd, _ := strconv.Atoi(e.Name())
			fds = append(fds, fd)
		}
	}
	return fds
}

// BreakRings puts /dev/null over every io_uring descriptor of the process,
// so that the rings' next io_uring_enter fails as a ring that stopped
// working would, and returns how many it replaced.
func BreakRings(t testing.TB) int {
	t.Helper()
	null, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(null)
	fds := RingFDs(t)
	for _, fd := range fds {
		if err := unix.Dup2(null, fd); err != nil {
			t.Fatal(err)
		}
	}
	return len(fds)
}
