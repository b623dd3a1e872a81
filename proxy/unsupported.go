//go:build !linux

package proxy

// The data path is built on epoll, splice and TCP_INFO. Elsewhere the
// package refuses to build, with this identifier's name as the message.
var _ = proxyNeedsLinuxEpollAndSplice
