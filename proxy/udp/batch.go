//go:build linux

package udp

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	// batchSize is how many datagrams one recvmmsg or sendmmsg moves.
	// Past 16 a bigger batch saves little: the syscall is already a small
	// share of the cost per datagram.
	batchSize = 16
	// bufSize holds the largest UDP payload whole (65,507 bytes over IPv4,
	// 65,527 over IPv6), so a datagram is never truncated. The buffers are
	// allocated once per loop; the kernel backs only the pages that
	// datagrams touch, so small datagrams keep the resident size small.
	bufSize = 1 << 16
)

// batch is the memory of one recvmmsg or sendmmsg call: message headers,
// their single buffers, peer addresses and control data. A loop has two:
// one for what clients send (forwarded to backends before the next
// receive) and one that collects replies for clients across sessions
// until the loop flushes them with one sendmmsg.
type batch struct {
	hdrs  [batchSize]unix.Mmsghdr
	iovs  [batchSize]unix.Iovec
	names [batchSize]sockaddr
	ctrls [batchSize]ctrlBuf
	bufs  []byte
	n     int // messages held (the reply batch)
}

func newBatch() *batch {
	return &batch{bufs: make([]byte, batchSize*bufSize)}
}

// buf is message i's buffer.
func (b *batch) buf(i int) []byte { return b.bufs[i*bufSize : (i+1)*bufSize] }

// payload is received message i.
func (b *batch) payload(i int) []byte { return b.bufs[i*bufSize : i*bufSize+int(b.hdrs[i].Len)] }

// armRecv readies messages [from, batchSize) for a receive. names and
// ctrl say whether to ask for the peer's address and the control data.
func (b *batch) armRecv(from int, names, ctrl bool) []unix.Mmsghdr {
	for i := from; i < batchSize; i++ {
		b.iovs[i] = unix.Iovec{Base: &b.bufs[i*bufSize]}
		b.iovs[i].SetLen(bufSize)
		h := &b.hdrs[i]
		*h = unix.Mmsghdr{}
		h.Hdr.Iov = &b.iovs[i]
		h.Hdr.SetIovlen(1)
		if names {
			h.Hdr.Name = (*byte)(unsafe.Pointer(&b.names[i].raw))
			h.Hdr.Namelen = uint32(unsafe.Sizeof(b.names[i].raw))
		}
		if ctrl {
			h.Hdr.Control = (*byte)(unsafe.Pointer(&b.ctrls[i]))
			h.Hdr.SetControllen(len(b.ctrls[i]) * 8)
		}
	}
	return b.hdrs[from:]
}

// received records what the kernel filled in for message i after a
// receive, and returns the datagram's length.
func (b *batch) received(i int) int {
	h := &b.hdrs[i]
	b.names[i].len = h.Hdr.Namelen
	b.iovs[i].SetLen(int(h.Len))
	return int(h.Len)
}

// control returns the control data received with message i.
func (b *batch) control(i int) []byte {
	return b.ctrls[i].bytes()[:min(int(b.hdrs[i].Hdr.Controllen), len(b.ctrls[i])*8)]
}

// toConnected readies received messages [from, to) to be sent on a
// connected socket: payload only.
func (b *batch) toConnected(from, to int) []unix.Mmsghdr {
	for i := from; i < to; i++ {
		h := &b.hdrs[i].Hdr
		h.Name, h.Namelen = nil, 0
		h.Control = nil
		h.SetControllen(0)
		h.Flags = 0
	}
	return b.hdrs[from:to]
}

// address readies message i, received on a connected socket, to be sent
// to peer with the control data ctrl (n bytes of it; 0: none).
func (b *batch) address(i int, peer *sockaddr, ctrl *ctrlBuf, n int) {
	b.names[i] = *peer
	h := &b.hdrs[i].Hdr
	h.Name = (*byte)(unsafe.Pointer(&b.names[i].raw))
	h.Namelen = peer.len
	h.Control = nil
	h.SetControllen(0)
	if n > 0 {
		b.ctrls[i] = *ctrl
		h.Control = (*byte)(unsafe.Pointer(&b.ctrls[i]))
		h.SetControllen(n)
	}
	h.Flags = 0
}
