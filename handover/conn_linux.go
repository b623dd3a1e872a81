package handover

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// peer is one hand-over connection: records on a SOCK_SEQPACKET unix
// socket, each step bounded by a deadline.
type peer struct {
	c        *net.UnixConn
	deadline func() time.Time
}

// send writes one record carrying fds (which stay open: the caller's).
func (p *peer) send(typ msgType, body any, fds []int) error {
	rec, err := encode(typ, len(fds), body)
	if err != nil {
		return err
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if err := p.c.SetWriteDeadline(p.deadline()); err != nil {
		return err
	}
	n, oobn, err := p.c.WriteMsgUnix(rec, oob, nil)
	if err != nil {
		return fmt.Errorf("send %s: %w", typ, err)
	}
	if n != len(rec) || oobn != len(oob) {
		return fmt.Errorf("send %s: short write (%d of %d bytes)", typ, n, len(rec))
	}
	return nil
}

// recv reads one record and the descriptors it carries, which the caller
// owns. On an error every descriptor received is closed.
func (p *peer) recv() (message, []*os.File, error) {
	if err := p.c.SetReadDeadline(p.deadline()); err != nil {
		return message{}, nil, err
	}
	buf := make([]byte, headerLen+maxBody+1)
	// Room for one descriptor more than a record may carry, so that a
	// peer sending too many is seen rather than silently cut.
	oob := make([]byte, unix.CmsgSpace(4*(maxFDsPerMessage+1)))
	n, oobn, flags, _, err := p.c.ReadMsgUnix(buf, oob)
	files, ferr := rights(oob[:oobn])
	fail := func(err error) (message, []*os.File, error) {
		closeFiles(files)
		return message{}, nil, err
	}
	switch {
	case err != nil:
		return fail(err)
	case ferr != nil:
		return fail(fmt.Errorf("%w: %v", ErrProtocol, ferr))
	case flags&unix.MSG_CTRUNC != 0 || len(files) > maxFDsPerMessage:
		return fail(fmt.Errorf("%w: too many descriptors in one record (at most %d)", ErrProtocol, maxFDsPerMessage))
	case flags&unix.MSG_TRUNC != 0:
		return fail(fmt.Errorf("%w: record larger than %d bytes", ErrProtocol, len(buf)-1))
	case n == 0 && oobn == 0:
		return fail(io.EOF) // SOCK_SEQPACKET's end of stream
	}
	m, err := decode(buf[:n])
	if err != nil {
		return fail(err)
	}
	if len(files) != m.nfds {
		return fail(fmt.Errorf("%w: %s message announces %d descriptors and carries %d", ErrProtocol, m.typ, m.nfds, len(files)))
	}
	return m, files, nil
}

// rights returns the descriptors of SCM_RIGHTS control messages as files.
// Every descriptor found is returned, even with an error, to be closed.
func rights(oob []byte) ([]*os.File, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("control data: %w", err)
	}
	var files []*os.File
	var errs []error
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SCM_RIGHTS {
			errs = append(errs, fmt.Errorf("unexpected control message %d/%d", m.Header.Level, m.Header.Type))
			continue
		}
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), "inherited socket"))
		}
	}
	return files, errors.Join(errs...)
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// peerUID returns the uid of the process at the other end of c.
func peerUID(c *net.UnixConn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil {
		return 0, err
	}
	if cerr != nil {
		return 0, cerr
	}
	return int(cred.Uid), nil
}
