package main

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// synCounter counts the SYNs that reach the backends' port on lo: one per
// TCP check, whichever proxy makes it. Accepted connections alone would miss
// HAProxy's tcp checks, which reset the connection before the handshake's
// last ACK (TCP_QUICKACK off, SO_LINGER 0), so the backend never accepts
// them. A packet socket bound with ETH_P_IP sees received packets only (not
// the outgoing copy of each), its filter keeps pure SYNs to the port, and
// the kernel's PACKET_STATISTICS counts them, including any it had no room
// to queue, so the bench never reads a packet.
type synCounter struct{ fd int }

func newSynCounter(port int) (*synCounter, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_IP)))
	if err != nil {
		return nil, fmt.Errorf("packet socket (needs CAP_NET_RAW): %w", err)
	}
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	// Ethernet header on lo is 14 bytes of zeros and type; IPv4 follows.
	prog := []unix.SockFilter{
		{Code: 0x28, K: 12},                         // ldh [12]: ethertype
		{Code: 0x15, Jt: 0, Jf: 8, K: 0x0800},       // jeq IPv4
		{Code: 0x30, K: 23},                         // ldb [23]: protocol
		{Code: 0x15, Jt: 0, Jf: 6, K: 6},            // jeq TCP
		{Code: 0x28, K: 20},                         // ldh [20]: fragment offset
		{Code: 0x45, Jt: 4, Jf: 0, K: 0x1fff},       // jset: a fragment, drop
		{Code: 0xb1, K: 14},                         // ldxb 4*([14]&0xf): IP header length
		{Code: 0x48, K: 16},                         // ldh [x+16]: TCP destination port
		{Code: 0x15, Jt: 0, Jf: 3, K: uint32(port)}, // jeq port
		{Code: 0x50, K: 27},                         // ldb [x+27]: TCP flags
		{Code: 0x54, K: 0x12},                       // and SYN|ACK
		{Code: 0x15, Jt: 1, Jf: 0, K: 0x02},         // jeq SYN alone
		{Code: 0x06, K: 0},                          // ret 0: drop
		{Code: 0x06, K: 1},                          // ret 1: keep one byte
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("attach filter: %w", err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4096)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: lo.Index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind packet socket to lo: %w", err)
	}
	return &synCounter{fd: fd}, nil
}

// take returns the SYNs counted since the last take.
func (c *synCounter) take() (uint64, error) {
	st, err := unix.GetsockoptTpacketStats(c.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return 0, fmt.Errorf("PACKET_STATISTICS: %w", err)
	}
	return uint64(st.Packets), nil
}

func (c *synCounter) close() error { return unix.Close(c.fd) }

func htons(v uint16) uint16 { return v<<8 | v>>8 }
