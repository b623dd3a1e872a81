package handover

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
)

// MaxPathLen bounds the socket path: a unix socket address holds 107
// bytes, and the path is first bound with a suffix (.<8 hex>.tmp).
const MaxPathLen = 107 - len(".0123abcd.tmp")

// socketFile is a unix listening socket bound beside its path, until
// publish renames it over the path.
type socketFile struct {
	path, tmp string
	ln        *net.UnixListener
	dev, ino  uint64
	published bool
}

// bindAside binds a SOCK_SEQPACKET socket at a fresh name in path's
// directory, readable and writable by its owner only. A random suffix
// rather than the pid: in containers every tierlb may be pid 1.
func bindAside(path string) (*socketFile, error) {
	if len(path) > MaxPathLen {
		return nil, fmt.Errorf("hand-over socket path %q is %d bytes, longer than %d", path, len(path), MaxPathLen)
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("hand-over socket %s: directory %s does not exist", path, filepath.Dir(path))
	}
	var r [4]byte
	_, _ = rand.Read(r[:])
	tmp := path + "." + hex.EncodeToString(r[:]) + ".tmp"
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: tmp, Net: "unixpacket"})
	if err != nil {
		return nil, fmt.Errorf("hand-over socket: %w", err)
	}
	ln.SetUnlinkOnClose(false) // the name moves; close removes it only while it is ours
	sf := &socketFile{path: path, tmp: tmp, ln: ln}
	if err := os.Chmod(tmp, 0o600); err != nil {
		sf.close(true)
		return nil, fmt.Errorf("hand-over socket: %w", err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(tmp, &st); err != nil {
		sf.close(true)
		return nil, fmt.Errorf("hand-over socket: %w", err)
	}
	sf.dev, sf.ino = st.Dev, st.Ino
	return sf, nil
}

// publish renames the socket over the path in one step: a successor
// looking at the path finds either the predecessor or this process.
func (sf *socketFile) publish() error {
	if sf.published {
		return nil
	}
	if err := os.Rename(sf.tmp, sf.path); err != nil {
		return fmt.Errorf("hand-over socket: %w", err)
	}
	sf.published = true
	return nil
}

// ours reports whether name still names this socket, not a successor's.
func (sf *socketFile) ours(name string) bool {
	var st syscall.Stat_t
	return syscall.Lstat(name, &st) == nil && st.Dev == sf.dev && st.Ino == sf.ino
}

// close stops listening and removes the name if it is still this
// socket's; the published path only when unlink says so.
func (sf *socketFile) close(unlink bool) error {
	err := sf.ln.Close()
	name := sf.tmp
	if sf.published {
		if !unlink {
			return err
		}
		name = sf.path
	}
	if sf.ino != 0 && sf.ours(name) {
		if rerr := os.Remove(name); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
	} else if sf.ino == 0 {
		os.Remove(sf.tmp)
	}
	return err
}
