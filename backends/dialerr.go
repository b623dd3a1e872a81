package backends

import (
	"context"
	"errors"
	"net"
	"os"
	"sync/atomic"
	"syscall"
)

// DialError classifies a failed backend dial for the
// tierlb_backend_connect_errors_total reason label.
type DialError int

// The dial error reasons, in label order.
const (
	DialTimeout DialError = iota
	DialRefused
	DialUnreachable
	DialOther
	numDialErrors
)

// DialErrorReasons lists every reason label, indexed by DialError.
var DialErrorReasons = [numDialErrors]string{"timeout", "refused", "unreachable", "other"}

func (d DialError) String() string { return DialErrorReasons[d] }

// ClassifyDialError maps a dial error to its reason.
func ClassifyDialError(err error) DialError {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return DialRefused
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.Is(err, syscall.ETIMEDOUT), errors.As(err, &ne) && ne.Timeout():
		return DialTimeout
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, syscall.EHOSTDOWN), errors.Is(err, syscall.ENETDOWN):
		return DialUnreachable
	}
	return DialOther
}

// dialErrorCounts are a backend's failed dials, indexed by DialError.
type dialErrorCounts [numDialErrors]atomic.Uint64

// CountConnectError records one failed dial to the backend. The counts are
// made at the first failure: most backends never have one.
func (b *Backend) CountConnectError(reason DialError) {
	if reason < 0 || reason >= numDialErrors {
		return
	}
	c := b.connectErrors.Load()
	if c == nil {
		b.connectErrors.CompareAndSwap(nil, new(dialErrorCounts))
		c = b.connectErrors.Load()
	}
	c[reason].Add(1)
}

// ConnectErrors returns the failed dials so far, indexed by DialError.
func (b *Backend) ConnectErrors() (n [numDialErrors]uint64) {
	c := b.connectErrors.Load()
	if c == nil {
		return n
	}
	for i := range n {
		n[i] = c[i].Load()
	}
	return n
}

// localDialErrnos are the dial errors that mean the dialing host ran out of
// something (descriptors, kernel memory, local ports), indexed like
// LocalDialErrors. They say nothing about the backend, so neither passive
// nor active health checks may count them against it.
var localDialErrnos = [...]syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.EADDRNOTAVAIL}

// LocalDialErrors names the local resource errors, for the errno label of
// tierlb_local_errors_total.
var LocalDialErrors = [len(localDialErrnos)]string{"EMFILE", "ENFILE", "ENOBUFS", "ENOMEM", "EADDRNOTAVAIL"}

// LocalDialError returns the index in LocalDialErrors of err's errno, or
// -1 when err is not a local resource error.
func LocalDialError(err error) int {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return -1
	}
	for i, e := range localDialErrnos {
		if errno == e {
			return i
		}
	}
	return -1
}
