//go:build linux && !race

package health

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// sockRead and sockWrite are raw, as the loop's other calls are
// (rawsys_linux.go); the race detector's build has its own pair.

func sockRead(fd int, b []byte) (int, error) {
	return rawIO(unix.SYS_READ, fd, b)
}

func sockWrite(fd int, b []byte) (int, error) {
	return rawIO(unix.SYS_WRITE, fd, b)
}

func rawIO(trap uintptr, fd int, b []byte) (int, error) {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	n, _, e := unix.RawSyscall(trap, uintptr(fd), uintptr(p), uintptr(len(b)))
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}
