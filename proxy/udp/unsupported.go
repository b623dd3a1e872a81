//go:build !linux

package udp

// The UDP data path is built on epoll, recvmmsg/sendmmsg and IP_PKTINFO.
// Elsewhere the package refuses to build, with this identifier's name as
// the message.
var _ = udpNeedsLinuxEpollAndMmsg
