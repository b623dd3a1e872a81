// Package uring is the little of io_uring(7) the event loops use: one
// ring per loop through which a wakeup's socket reads, and then its
// writes, go to the kernel in one io_uring_enter each instead of a
// syscall per socket. Readiness still comes from epoll; every operation is
// submitted with MSG_DONTWAIT on a socket epoll reported ready, so the
// kernel completes it inline, during the call that submits it, and a
// batch is done when its call returns. Nothing is left in flight between
// calls, which keeps buffers and descriptors the loop's to reuse or close.
//
//	r, err := uring.New(64)
//	if err != nil { ... } // no io_uring here: use plain syscalls
//	r.Recv(fd, buf, 0, 7)
//	if err := r.Submit(); err != nil { ... }
//	n := r.Reap(out[:])  // out[0] = {UserData: 7, Res: bytes or -errno}
//
// A Ring belongs to one goroutine. No liburing: the rings are three shared
// mappings and two indexes each, read and written with atomics.
package uring

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The kernel ABI (include/uapi/linux/io_uring.h).
const (
	opClose    = 19 // IORING_OP_CLOSE
	opEpollCtl = 29 // IORING_OP_EPOLL_CTL
	opSend     = 26 // IORING_OP_SEND
	opRecv     = 27 // IORING_OP_RECV

	sqeIOLink = 1 << 2 // IOSQE_IO_LINK

	setupSubmitAll = 1 << 7 // IORING_SETUP_SUBMIT_ALL: one bad entry does not stop the rest
	featSingleMmap = 1 << 0 // IORING_FEAT_SINGLE_MMAP
	enterGetEvents = 1 << 0 // IORING_ENTER_GETEVENTS

	offSQRing = 0
	offCQRing = 0x8000000
	offSQEs   = 0x10000000
)

type sqringOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type cqringOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

type params struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sqOff                                                                  sqringOffsets
	cqOff                                                                  cqringOffsets
}

// sqe is a submission queue entry, 64 bytes.
type sqe struct {
	opcode      uint8
	flags       uint8
	ioprio      uint16
	fd          int32
	off         uint64
	addr        uint64
	len         uint32
	opFlags     uint32 // msg_flags for send and recv
	userData    uint64
	bufIndex    uint16
	personality uint16
	spliceFDIn  int32
	addr3       uint64
	_           uint64
}

// Completion is one completed operation: its user data and its result,
// a byte count or a negated errno.
type Completion struct {
	UserData uint64
	Res      int32
	Flags    uint32
}

// Ring is an io_uring instance with its three mappings.
type Ring struct {
	fd int

	sqMem, cqMem, sqeMem []byte
	separateCQ           bool // cqMem is a mapping of its own

	sqHead, sqTail *uint32
	sqMask         uint32
	sqArray        []uint32
	sqes           []sqe
	tail           uint32 // the next entry's index, published on Submit
	unsent         uint32 // entries prepared and not yet submitted

	cqHead, cqTail *uint32
	cqMask         uint32
	cqes           []Completion
}

// ErrFull is Recv's and Send's answer when every entry of the ring waits
// for Submit already.
var ErrFull = errors.New("io_uring submission queue full")

// New sets up a ring of entries submission entries (a power of two).
// Kernels before 5.18 (no IORING_SETUP_SUBMIT_ALL), a kernel with
// io_uring disabled (kernel.io_uring_disabled) and a seccomp profile that
// forbids it (Docker's default since 25.0) all end in an error here, and
// the caller does without.
func New(entries uint32) (*Ring, error) {
	var p params
	p.flags = setupSubmitAll
	fd, _, e := unix.RawSyscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if e != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", e)
	}
	r := &Ring{fd: int(fd)}
	if err := r.mmap(&p); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func (r *Ring) mmap(p *params) error {
	sqSize := int(p.sqOff.array) + int(p.sqEntries)*4
	cqSize := int(p.cqOff.cqes) + int(p.cqEntries)*int(unsafe.Sizeof(Completion{}))
	single := p.features&featSingleMmap != 0
	if single {
		sqSize = max(sqSize, cqSize)
	}
	var err error
	const prot, flags = unix.PROT_READ | unix.PROT_WRITE, unix.MAP_SHARED | unix.MAP_POPULATE
	if r.sqMem, err = unix.Mmap(r.fd, offSQRing, sqSize, prot, flags); err != nil {
		return fmt.Errorf("mmap io_uring submission ring: %w", err)
	}
	r.cqMem = r.sqMem
	if !single {
		r.separateCQ = true
		if r.cqMem, err = unix.Mmap(r.fd, offCQRing, cqSize, prot, flags); err != nil {
			return fmt.Errorf("mmap io_uring completion ring: %w", err)
		}
	}
	sqeSize := int(p.sqEntries) * int(unsafe.Sizeof(sqe{}))
	if r.sqeMem, err = unix.Mmap(r.fd, offSQEs, sqeSize, prot, flags); err != nil {
		return fmt.Errorf("mmap io_uring entries: %w", err)
	}
	u32 := func(mem []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }
	r.sqHead, r.sqTail = u32(r.sqMem, p.sqOff.head), u32(r.sqMem, p.sqOff.tail)
	r.sqMask = *u32(r.sqMem, p.sqOff.ringMask)
	r.sqArray = unsafe.Slice(u32(r.sqMem, p.sqOff.array), p.sqEntries)
	r.sqes = unsafe.Slice((*sqe)(unsafe.Pointer(&r.sqeMem[0])), p.sqEntries)
	r.tail = atomic.LoadUint32(r.sqTail)
	r.cqHead, r.cqTail = u32(r.cqMem, p.cqOff.head), u32(r.cqMem, p.cqOff.tail)
	r.cqMask = *u32(r.cqMem, p.cqOff.ringMask)
	r.cqes = unsafe.Slice((*Completion)(unsafe.Pointer(&r.cqMem[p.cqOff.cqes])), p.cqEntries)
	return nil
}

// Close unmaps the rings and closes the ring's descriptor.
func (r *Ring) Close() {
	if r.sqeMem != nil {
		unix.Munmap(r.sqeMem)
	}
	if r.cqMem != nil && r.separateCQ {
		unix.Munmap(r.cqMem)
	}
	if r.sqMem != nil {
		unix.Munmap(r.sqMem)
	}
	r.sqMem, r.cqMem, r.sqeMem = nil, nil, nil
	if r.fd >= 0 {
		unix.Close(r.fd)
		r.fd = -1
	}
}

// Recv prepares a recv(2) of fd into b with flags (MSG_DONTWAIT is
// added).
func (r *Ring) Recv(fd int, b []byte, flags uint32, userData uint64) error {
	return r.prep(opRecv, fd, b, flags|unix.MSG_DONTWAIT, userData)
}

// Send prepares a send(2) of b to fd with flags (MSG_DONTWAIT and
// MSG_NOSIGNAL are added).
func (r *Ring) Send(fd int, b []byte, flags uint32, userData uint64) error {
	return r.prep(opSend, fd, b, flags|unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, userData)
}

// Link chains the entry prepared last to the next one prepared: the next
// starts only once this one has succeeded, and completes with
// -ECANCELED if it failed. Chained sends on one socket keep their order
// and stop at the first error, as one sendmmsg does.
func (r *Ring) Link() {
	if r.unsent > 0 {
		r.sqes[(r.tail-1)&r.sqMask].flags |= sqeIOLink
	}
}

// CloseFD prepares a close(2) of fd. A socket has nothing to flush, so
// it closes inline too.
func (r *Ring) CloseFD(fd int, userData uint64) error {
	return r.prep(opClose, fd, nil, 0, userData)
}

// EpollCtl prepares an epoll_ctl(2) of epfd: op on fd with ev, which must
// stay where it is until Submit returns.
func (r *Ring) EpollCtl(epfd, op, fd int, ev *unix.EpollEvent, userData uint64) error {
	if err := r.prep(opEpollCtl, epfd, nil, 0, userData); err != nil {
		return err
	}
	e := &r.sqes[(r.tail-1)&r.sqMask]
	e.off, e.len, e.addr = uint64(fd), uint32(op), uint64(uintptr(unsafe.Pointer(ev)))
	return nil
}

func (r *Ring) prep(op uint8, fd int, b []byte, flags uint32, userData uint64) error {
	if r.tail-atomic.LoadUint32(r.sqHead) > r.sqMask {
		return ErrFull
	}
	i := r.tail & r.sqMask
	r.sqes[i] = sqe{opcode: op, fd: int32(fd), addr: uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b)))),
		len: uint32(len(b)), opFlags: flags, userData: userData}
	r.sqArray[i] = i
	r.tail++
	r.unsent++
	return nil
}

// Submit hands the prepared entries to the kernel and returns once each
// has completed. Entries on sockets with MSG_DONTWAIT complete inline, so
// this is one io_uring_enter; a signal (Go preempts with SIGURG) or an
// entry the kernel finishes later makes it wait again. An error means the
// ring is unusable; the entries the kernel had taken may have completed,
// and Reap still returns those.
func (r *Ring) Submit() error {
	want := r.unsent
	atomic.StoreUint32(r.sqTail, r.tail)
	submit := want
	for {
		ready := atomic.LoadUint32(r.cqTail) - atomic.LoadUint32(r.cqHead)
		if submit == 0 && ready >= want {
			return nil
		}
		n, _, e := unix.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(submit),
			uintptr(want-min(ready, want)), enterGetEvents, 0, 0)
		switch {
		case e == unix.EINTR:
		case e == unix.EAGAIN || e == unix.EBUSY:
			// Out of kernel memory for the moment, or completions to
			// reap first: the completions are the caller's to read.
			if submit > 0 {
				return r.unpublish(e)
			}
			return fmt.Errorf("io_uring_enter: %w", e)
		case e != 0:
			if submit > 0 {
				return r.unpublish(e)
			}
			return fmt.Errorf("io_uring_enter: %w", e)
		default:
			submit -= min(uint32(n), submit)
			r.unsent = submit
		}
	}
}

// unpublish takes back the entries the kernel did not take, so that a
// later Submit does not send them after their buffers were reused.
func (r *Ring) unpublish(e unix.Errno) error {
	head := atomic.LoadUint32(r.sqHead)
	r.tail = head
	atomic.StoreUint32(r.sqTail, head)
	r.unsent = 0
	return fmt.Errorf("io_uring_enter: %w", e)
}

// Reap moves the completions waiting into out and returns how many.
func (r *Ring) Reap(out []Completion) int {
	head := atomic.LoadUint32(r.cqHead)
	tail := atomic.LoadUint32(r.cqTail)
	n := 0
	for head != tail && n < len(out) {
		out[n] = r.cqes[head&r.cqMask]
		head++
		n++
	}
	atomic.StoreUint32(r.cqHead, head)
	return n
}
