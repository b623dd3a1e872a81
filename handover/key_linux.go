package handover

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// rawDup duplicates f's descriptor without f.Fd(), which would clear
// O_NONBLOCK on the open file description: that flag is shared by every
// duplicate, in this process and in the one it is handed to, and a
// blocking listener would stall the loops that accept on it.
func rawDup(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, err
	}
	nfd, derr := -1, error(nil)
	if err := rc.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	return nfd, derr
}

// socketKey identifies the kernel socket behind a descriptor: duplicates
// share the socket file system's device and inode.
func socketKey(fd int) ([2]uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return [2]uint64{}, fmt.Errorf("listening socket: %w", err)
	}
	return [2]uint64{st.Dev, st.Ino}, nil
}
