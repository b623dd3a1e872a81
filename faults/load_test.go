package faults

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tierlb/tierlb/internal/testkit"
)

// startLoad runs workers against addr, each connection sending a line,
// wanting it echoed whole and closing, for at most maxDur and maxConns
// connections, at the highest rate testkit allows for that many, or until
// Stop.
func startLoad(t *testing.T, addr string, workers int, maxDur time.Duration, maxConns int64) *testkit.Load {
	var seq atomic.Int64
	pace := testkit.Pace{Rate: testkit.MaxRate(maxConns), Count: maxConns, Within: maxDur}
	return testkit.StartLoad(t, workers, pace, func(context.Context) error {
		return exchange(addr, fmt.Appendf(nil, "connection %d says hello\n", seq.Add(1)))
	})
}

// exchange is one connection: msg out, the same bytes back, close. The
// deadline only ends a hung connection; a lost one fails at once.
func exchange(addr string, msg []byte) error {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echo: got %q, want %q", got, msg)
	}
	return nil
}
