//go:build linux && race

package health

import "syscall"

// Under the race detector a probe reads and writes through package
// syscall, as package net does: its calls order a write before the peer's
// read, which raw calls cannot tell the detector.

func sockRead(fd int, b []byte) (int, error)  { return syscall.Read(fd, b) }
func sockWrite(fd int, b []byte) (int, error) { return syscall.Write(fd, b) }
