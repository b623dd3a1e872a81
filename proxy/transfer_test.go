package proxy

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tierlb/tierlb/internal/testkit"
)

// sendRandom writes n bytes of a random stream derived from seed and
// returns their sha256. Each 64 KiB chunk is a fixed random block stamped
// with its index, so generating 256 MiB costs a memcpy while any lost,
// repeated or reordered chunk still changes the hash.
func sendRandom(w io.Writer, seed uint64, n int64) ([]byte, error) {
	h := sha256.New()
	r := rand.New(rand.NewPCG(seed, seed))
	block := make([]byte, 61<<10) // odd size: chunks straddle pipe pages
	for i := range block {
		block[i] = byte(r.Uint32())
	}
	for idx := uint64(0); n > 0; idx++ {
		k := min(int64(len(block)), n)
		binary.LittleEndian.PutUint64(block, idx)
		if _, err := w.Write(block[:k]); err != nil {
			return nil, err
		}
		h.Write(block[:k])
		n -= k
	}
	return h.Sum(nil), nil
}

func hashAll(r io.Reader) ([]byte, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return h.Sum(nil), n, err
}

// TestBulkBothDirections sends 256 MiB each way at once, spliced and
// copied, and checks both hashes and the backend's byte counters.
func TestBulkBothDirections(t *testing.T) {
	size := int64(256 << 20)
	if testing.Short() {
		size = 16 << 20
	}
	for _, mode := range copyModes {
		t.Run(mode.name, func(t *testing.T) {
			type result struct {
				sum []byte
				n   int64
				err error
			}
			fromClient := make(chan result, 1)
			toClient := make(chan result, 1)
			be := startBackend(t, func(c net.Conn) {
				done := make(chan struct{})
				go func() {
					defer close(done)
					sum, err := sendRandom(c, 2, size)
					c.(*net.TCPConn).CloseWrite()
					toClient <- result{sum: sum, err: err}
				}()
				sum, n, err := hashAll(c)
				fromClient <- result{sum, n, err}
				<-done
			})
			set := staticSet(t, be.addr())
			s := startService(t, Config{ZeroCopy: mode.zeroCopy}, set)
			c := dial(t, s)

			sent := make(chan result, 1)
			go func() {
				sum, err := sendRandom(c, 1, size)
				c.CloseWrite()
				sent <- result{sum: sum, err: err}
			}()
			gotSum, gotN, err := hashAll(c)
			if err != nil {
				t.Fatalf("client read: %v", err)
			}
			bsent := <-toClient
			if bsent.err != nil {
				t.Fatalf("backend write: %v", bsent.err)
			}
			if gotN != size || !bytes.Equal(gotSum, bsent.sum) {
				t.Errorf("client got %d bytes, hash match %v", gotN, bytes.Equal(gotSum, bsent.sum))
			}
			cs := <-sent
			if cs.err != nil {
				t.Fatalf("client write: %v", cs.err)
			}
			bs := <-fromClient
			if bs.err != nil || bs.n != size || !bytes.Equal(bs.sum, cs.sum) {
				t.Errorf("backend got %d bytes (err %v), hash match %v", bs.n, bs.err, bytes.Equal(bs.sum, cs.sum))
			}
			b := set.Backends()[0]
			testkit.Eventually(t, 5*time.Second, "connection closed", func() bool { return s.Active() == 0 })
			toB, toC := b.Bytes()
			if toB != uint64(size) || toC != uint64(size) {
				t.Errorf("backend counters: to_backend %d to_client %d, want %d each", toB, toC, size)
			}
		})
	}
}

// TestHalfCloseEcho: the client shuts its write side and still reads the
// whole reply, which the backend sends only after seeing the FIN.
func TestHalfCloseEcho(t *testing.T) {
	for _, mode := range copyModes {
		t.Run(mode.name, func(t *testing.T) {
			be := startBackend(t, func(c net.Conn) {
				// Read everything first: the reply depends on the FIN.
				b, err := io.ReadAll(c)
				if err != nil {
					return
				}
				time.Sleep(20 * time.Millisecond) // the client's direction is half-closed meanwhile
				c.Write(bytes.ToUpper(b))
				c.Write(b)
			})
			s := startService(t, Config{ZeroCopy: mode.zeroCopy}, staticSet(t, be.addr()))
			c := dial(t, s)
			msg := bytes.Repeat([]byte("hello, half-closed world\n"), 4000)
			if _, err := c.Write(msg); err != nil {
				t.Fatal(err)
			}
			if err := c.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("read reply: %v", err)
			}
			want := append(bytes.ToUpper(msg), msg...)
			if !bytes.Equal(got, want) {
				t.Fatalf("reply: got %d bytes, want %d", len(got), len(want))
			}
		})
	}
}

// TestPipeFailureFallsBack: when no pipe can be made (EMFILE here: the
// child's descriptor limit leaves room for one connection's two sockets
// and nothing more) a burst is copied through a buffer instead of failing
// the connection.
func TestPipeFailureFallsBack(t *testing.T) {
	if isChild("TestPipeFailureFallsBack") {
		serveChild("nopipe", Options{Loops: mustLoops(1)}, func(s *Service) error {
			if err := emfileWarmUp(s); err != nil {
				return fmt.Errorf("warm-up: %w", err)
			}
			limit, err := fdLimit(2)
			if err != nil {
				return err
			}
			return unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: limit, Max: limit})
		})
		return
	}
	be := startBackend(t, echo)
	child := startChild(t, "TestPipeFailureFallsBack", be.addr())
	nc, err := net.Dial("tcp", child.addr)
	if err != nil {
		t.Fatal(err)
	}
	c := nc.(*net.TCPConn)
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	const size = 8 << 20
	sent := make(chan []byte, 1)
	go func() {
		sum, _ := sendRandom(c, 3, size)
		c.CloseWrite()
		sent <- sum
	}()
	got, n, err := hashAll(c)
	if err != nil || n != size || !bytes.Equal(got, <-sent) {
		t.Fatalf("echo through the fallback: %d bytes, err %v; child log:\n%s", n, err, child.stop())
	}
}

// TestPipesAreGrown: new pipes get pipeSize where fs.pipe-max-size allows
// it.
func TestPipesAreGrown(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/fs/pipe-max-size")
	if err != nil {
		t.Fatal(err)
	}
	max, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	want := pipeSize
	if max < pipeSize {
		want = 64 << 10 // the kernel's default, left as created
	}
	p, err := newPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	got, err := unix.FcntlInt(uintptr(p.r), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		t.Fatal(err)
	}
	if p.size != want || got != want {
		t.Errorf("pipe size %d (kernel says %d), want %d", p.size, got, want)
	}
}
