package handover

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tierlb/tierlb/internal/testkit"
)

// record is one message a fake peer sends: raw bytes and descriptors.
type record struct {
	b   []byte
	fds []int
}

func rec(t *testing.T, typ msgType, nfds int, body any, fds ...int) record {
	t.Helper()
	b, err := encode(typ, nfds, body)
	if err != nil {
		t.Fatal(err)
	}
	return record{b: b, fds: fds}
}

// fakePredecessor answers one successor at path with script (after its
// hello), until the successor hangs up; stop waits for that.
func fakePredecessor(t *testing.T, path string, script []record) (stop func()) {
	t.Helper()
	l, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var once sync.Once
	stop = func() { once.Do(func() { l.Close(); <-done }) }
	t.Cleanup(stop)
	go func() {
		defer close(done)
		c, err := l.AcceptUnix()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 1<<16)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(buf); err != nil {
			return
		}
		for _, r := range script {
			var oob []byte
			if len(r.fds) > 0 {
				oob = unix.UnixRights(r.fds...)
			}
			if _, _, err := c.WriteMsgUnix(r.b, oob, nil); err != nil {
				return
			}
		}
		for { // until the successor hangs up
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	}()
	return stop
}

// TestBadPredecessor: whatever a peer at the path sends, the successor
// gets a clear error and keeps no descriptor.
func TestBadPredecessor(t *testing.T) {
	ln := tcpListener(t, false)
	lnf, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	defer lnf.Close()
	lfd := int(lnf.Fd()) // a test-only duplicate: its blocking mode does not matter
	lnDesc := Desc{Network: "tcp", Addr: ln.Addr().(*net.TCPAddr).AddrPort()}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	many := make([]int, 2*maxFDsPerMessage)
	for i := range many {
		many[i] = lfd
	}
	header := func(version byte, typ msgType, nfds uint16, bodyLen uint32, body string) []byte {
		b := []byte(magic)
		b = append(b, version, byte(typ))
		b = binary.BigEndian.AppendUint16(b, nfds)
		b = binary.BigEndian.AppendUint32(b, bodyLen)
		return append(b, body...)
	}
	offer1 := func(t *testing.T) record { return rec(t, msgOffer, 0, offerBody{Sockets: 1}) }
	tests := []struct {
		name   string
		script func(t *testing.T) []record
		want   string
		is     error
	}{
		{"wrong version", func(t *testing.T) []record {
			return []record{{b: header(2, msgOffer, 0, 2, "{}")}}
		}, "protocol version 2", nil},
		{"not tierlb", func(t *testing.T) []record {
			return []record{{b: []byte("HTTP/1.1 400 Bad Request\r\n\r\n")}}
		}, "not a tierlb hand-over socket", ErrProtocol},
		{"short record", func(t *testing.T) []record { return []record{{b: []byte("TLB")}} }, "shorter than", ErrProtocol},
		{"truncated body", func(t *testing.T) []record {
			return []record{{b: header(Version, msgOffer, 0, 100, `{"sockets":1}`)}}
		}, "truncated", ErrProtocol},
		{"unknown type", func(t *testing.T) []record {
			return []record{{b: header(Version, 99, 0, 2, "{}")}}
		}, "unknown message", ErrProtocol},
		{"unknown field", func(t *testing.T) []record {
			return []record{{b: header(Version, msgOffer, 0, 12, `{"socket":1}`)}}
		}, "unknown field", ErrProtocol},
		{"out of order", func(t *testing.T) []record { return []record{rec(t, msgAck, 0, emptyBody{})} }, "expected offer", ErrProtocol},
		{"negative offer", func(t *testing.T) []record { return []record{rec(t, msgOffer, 0, offerBody{Sockets: -1})} }, "offer of -1", ErrProtocol},
		{"huge offer", func(t *testing.T) []record { return []record{rec(t, msgOffer, 0, offerBody{Sockets: MaxSockets + 1})} }, "offer of", ErrProtocol},
		{"descriptors without description", func(t *testing.T) []record {
			return []record{offer1(t), rec(t, msgSockets, 1, socketsBody{}, lfd)}
		}, "1 descriptors with 0 descriptions", ErrProtocol},
		{"description without descriptor", func(t *testing.T) []record {
			return []record{offer1(t), rec(t, msgSockets, 0, socketsBody{Sockets: []Desc{lnDesc}})}
		}, "0 descriptors with 1 descriptions", ErrProtocol},
		{"more descriptors than announced", func(t *testing.T) []record {
			return []record{offer1(t), {b: header(Version, msgSockets, 0, 2, "{}"), fds: []int{lfd}}}
		}, "announces 0 descriptors and carries 1", ErrProtocol},
		{"descriptors on an offer", func(t *testing.T) []record {
			return []record{{b: header(Version, msgOffer, 1, 13, `{"sockets":1}`), fds: []int{lfd}}}
		}, "offer message announces 1 descriptors", ErrProtocol},
		{"too many descriptors", func(t *testing.T) []record {
			return []record{offer1(t), {b: header(Version, msgSockets, 0, 2, "{}"), fds: many[:maxFDsPerMessage+1]}}
		}, "too many descriptors", ErrProtocol},
		{"descriptors beyond the control buffer", func(t *testing.T) []record {
			return []record{offer1(t), {b: header(Version, msgSockets, 0, 2, "{}"), fds: many}}
		}, "too many descriptors", ErrProtocol},
		{"more sockets than offered", func(t *testing.T) []record {
			return []record{offer1(t), rec(t, msgSockets, 2, socketsBody{Sockets: []Desc{lnDesc, lnDesc}}, lfd, lfd)}
		}, "more sockets than the 1 offered", ErrProtocol},
		{"description the kernel denies", func(t *testing.T) []record {
			d := lnDesc
			d.Network = "udp"
			return []record{offer1(t), rec(t, msgSockets, 1, socketsBody{Sockets: []Desc{d}}, lfd)}
		}, "described as udp", ErrProtocol},
		{"a pipe for a socket", func(t *testing.T) []record {
			return []record{offer1(t), rec(t, msgSockets, 1, socketsBody{Sockets: []Desc{lnDesc}}, int(pr.Fd()))}
		}, "not a socket", ErrProtocol},
		{"bad description", func(t *testing.T) []record {
			return []record{offer1(t), rec(t, msgSockets, 1, socketsBody{Sockets: []Desc{{Network: "sctp", Addr: lnDesc.Addr}}}, lfd)}
		}, `network "sctp"`, ErrProtocol},
		{"error from the peer", func(t *testing.T) []record {
			return []record{rec(t, msgError, 0, errorBody{Code: codeRefused, Error: "go away"})}
		}, "peer: go away", nil},
		{"silence", func(t *testing.T) []record { return nil }, "i/o timeout", os.ErrDeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := sockPath(t)
			before := testkit.OpenFDs(t)
			stop := fakePredecessor(t, path, tt.script(t))
			in, err := Fetch(t.Context(), path, Options{Timeout: 300 * time.Millisecond})
			stop()
			if err == nil {
				in.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.want) || (tt.is != nil && !errors.Is(err, tt.is)) {
				t.Fatalf("got %v, want %q (%v)", err, tt.want, tt.is)
			}
			if tt.name == "wrong version" && !errors.As(err, new(*VersionError)) {
				t.Fatalf("%v is not a VersionError", err)
			}
			if n := testkit.OpenFDs(t); n > before {
				t.Fatalf("%d descriptors left open", n-before)
			}
		})
	}
}

// TestBadSuccessor: a peer that is not a tierlb successor gets an error,
// and the predecessor serves the next one.
func TestBadSuccessor(t *testing.T) {
	ln := tcpListener(t, false)
	path := sockPath(t)
	lis := listenersOf(t, ln)
	serve(t, path, lis, Options{Timeout: 300 * time.Millisecond})
	ask := func(send []byte, fds ...int) string {
		c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: path, Net: "unixpacket"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if send != nil {
			var oob []byte
			if len(fds) > 0 {
				oob = unix.UnixRights(fds...)
			}
			if _, _, err := c.WriteMsgUnix(send, oob, nil); err != nil {
				t.Fatal(err)
			}
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 1<<16)
		n, err := c.Read(buf)
		if err != nil {
			return err.Error()
		}
		return string(buf[:n])
	}
	hello, _ := encode(msgHello, 0, helloBody{})
	v2 := append([]byte(nil), hello...)
	v2[4] = 2
	pr, pw, _ := os.Pipe()
	defer pr.Close()
	defer pw.Close()
	tests := []struct {
		name string
		send []byte
		fds  []int
		want string
	}{
		{"wrong version", v2, nil, "version 2"},
		{"garbage", []byte("GET / HTTP/1.0\r\n\r\n"), nil, "not a tierlb"},
		{"descriptors on a hello", func() []byte { b := append([]byte(nil), hello...); return b }(), []int{int(pr.Fd())}, "announces 0 descriptors and carries 1"},
		{"ready first", func() []byte { b, _ := encode(msgReady, 0, emptyBody{}); return b }(), nil, "expected hello"},
		{"silence", nil, nil, "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ask(tt.send, tt.fds...); !strings.Contains(got, tt.want) {
				t.Fatalf("answer %q, want %q", got, tt.want)
			}
		})
	}
	in, err := Fetch(t.Context(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	in.Close()
	if lis.stops() != 0 {
		t.Fatal("a bad successor stopped the predecessor")
	}
}

// TestOtherUserRefused: a process of another uid gets nothing, even where
// the file's mode would let it connect. Needs root, to run as another uid.
func TestOtherUserRefused(t *testing.T) {
	if os.Getenv("HANDOVER_FETCH_PATH") != "" {
		_, err := Fetch(t.Context(), os.Getenv("HANDOVER_FETCH_PATH"), Options{})
		os.Stdout.WriteString("fetch: " + errString(err) + "\n")
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a successor as another uid")
	}
	ln := tcpListener(t, false)
	path := sockPath(t)
	lis := listenersOf(t, ln)
	serve(t, path, lis, Options{})
	dir := filepath.Dir(path)
	os.Chmod(dir, 0o755)
	bin, err := os.ReadFile(os.Args[0]) // its own directory is root's only
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "successor"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func() string {
		cmd := exec.Command(filepath.Join(dir, "successor"), "-test.run=^TestOtherUserRefused$", "-test.count=1")
		cmd.Env = append(os.Environ(), "HANDOVER_FETCH_PATH="+path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		return string(out) + errString(err)
	}
	if out := run(); !strings.Contains(out, "permission denied") {
		t.Fatalf("mode 0600 let another uid connect: %s", out)
	}
	os.Chmod(path, 0o666)
	if out := run(); !strings.Contains(out, "uid 65534 may not take") {
		t.Fatalf("another uid was not refused: %s", out)
	}
	if lis.stops() != 0 {
		t.Fatal("another uid stopped the predecessor")
	}
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}
