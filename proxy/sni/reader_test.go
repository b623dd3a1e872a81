package sni

import (
	"bytes"
	"crypto/tls"
	"errors"
	"testing"
)

// readAll feeds in to a Reader in pieces of step bytes, as a socket
// would deliver them, and returns what Next said when it stopped.
func readAll(in []byte, step int) (int, error) {
	var r Reader
	for end := min(step, len(in)); ; end = min(end+step, len(in)) {
		n, err := r.Next(in[:end])
		if n > 0 || err != nil || end == len(in) {
			return n, err
		}
	}
}

func TestReaderFramesRealHellos(t *testing.T) {
	pq := clientHello(t, &tls.Config{ServerName: "app.example.com"})
	if len(pq) < 1200 {
		t.Fatalf("hello of %d bytes: want a post-quantum key share (>1200)", len(pq))
	}
	big := clientHello(t, bigALPN(10000))
	tail := []byte("\x17\x03\x03\x00\x05early")
	tests := []struct {
		name string
		in   []byte
		want int // the hello's length
		sni  string
	}{
		{"post-quantum", pq, len(pq), "app.example.com"},
		{"no server name", clientHello(t, &tls.Config{}), 0, ""},
		{"TLS 1.2 only", clientHello(t, &tls.Config{ServerName: "v12.example.com", MaxVersion: tls.VersionTLS12}), 0, "v12.example.com"},
		{"two records", twoRecords(pq, 700), len(pq) + recordHeaderLen, "app.example.com"},
		{"handshake header split", twoRecords(pq, 2), len(pq) + recordHeaderLen, "app.example.com"},
		{"large extension over two records", twoRecords(big, 8000), len(big) + recordHeaderLen, "big.example.com"},
		{"bytes after the hello", append(append([]byte(nil), pq...), tail...), len(pq), "app.example.com"},
	}
	for _, tt := range tests {
		want := tt.want
		if want == 0 {
			want = len(tt.in)
		}
		for _, step := range []int{1, 7, 1460, len(tt.in)} {
			n, err := readAll(tt.in, step)
			if err != nil || n != want {
				t.Fatalf("%s, %d bytes a read: Next = %d, %v; want %d, nil", tt.name, step, n, err, want)
			}
		}
		name, err := ServerName(tt.in[:want])
		if err != nil || string(name) != tt.sni {
			t.Errorf("%s: ServerName = %q, %v; want %q", tt.name, name, err, tt.sni)
		}
	}
}

func TestReaderRefuses(t *testing.T) {
	pq := clientHello(t, &tls.Config{ServerName: "app.example.com"})
	// A hello whose handshake length claims more than fits in MaxSize.
	huge := append([]byte(nil), pq...)
	huge[6], huge[7], huge[8] = 0, 0x40, 0
	alert := append(append([]byte(nil), pq[:recordHeaderLen+10]...), 0x15, 3, 3, 0, 2, 2, 40)
	alert[3], alert[4] = 0, 10
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"plain HTTP", []byte("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"), ErrNotTLS},
		{"SSH banner", []byte("SSH-2.0-OpenSSH_9.2\r\n"), ErrNotTLS},
		{"SSLv2 hello", []byte{0x80, 0x2e, 0x01, 0x03, 0x01}, ErrNotTLS},
		{"handshake type, bad version", []byte{0x16, 0x01, 0x00, 0x00, 0x10}, ErrNotTLS},
		{"empty record", []byte{0x16, 3, 1, 0, 0}, ErrMalformed},
		{"record over 16 KiB", []byte{0x16, 3, 1, 0x40, 0x01}, ErrMalformed},
		{"not a ClientHello", []byte{0x16, 3, 1, 0, 4, 2, 0, 0, 0}, ErrMalformed},
		{"alert inside the hello", alert, ErrMalformed},
		{"declared too large", huge, ErrTooLarge},
		{"too many tiny records", bytes.Repeat([]byte{0x16, 3, 1, 0, 1, 1}, MaxSize), ErrTooLarge},
	}
	for _, tt := range tests {
		for _, step := range []int{1, len(tt.in)} {
			n, err := readAll(tt.in, step)
			if !errors.Is(err, tt.want) || n != 0 {
				t.Errorf("%s, %d bytes a read: Next = %d, %v; want %v", tt.name, step, n, err, tt.want)
			}
		}
	}
}

func TestReaderNotTLSOnFirstByte(t *testing.T) {
	var r Reader
	if _, err := r.Next([]byte("G")); !errors.Is(err, ErrNotTLS) {
		t.Fatalf("Next(\"G\") = %v; want ErrNotTLS at once", err)
	}
	r.Reset()
	if n, err := r.Next([]byte{0x16}); n != 0 || err != nil {
		t.Fatalf("Next(0x16) = %d, %v; want more to come", n, err)
	}
}

func TestServerNameMalformed(t *testing.T) {
	pq := clientHello(t, &tls.Config{ServerName: "app.example.com"})
	bad := append([]byte(nil), pq...)
	// Cut the session id's length field's meaning: claim 255 bytes.
	bad[recordHeaderLen+handshakeHeaderLen+2+32] = 255
	for _, in := range [][]byte{bad, pq[:recordHeaderLen+handshakeHeaderLen+10]} {
		if _, err := ServerName(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("ServerName(%x...) = %v; want ErrMalformed", in[:16], err)
		}
	}
}

func BenchmarkServerName(b *testing.B) {
	pq := clientHello(b, &tls.Config{ServerName: "app.example.com"})
	b.ReportAllocs()
	for b.Loop() {
		var r Reader
		n, err := r.Next(pq)
		if err != nil || n != len(pq) {
			b.Fatal(n, err)
		}
		if _, err := ServerName(pq[:n]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStdlibServerName is the alternative ServerName's doc measures.
func BenchmarkStdlibServerName(b *testing.B) {
	pq := clientHello(b, &tls.Config{ServerName: "app.example.com"})
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := stdlibServerName(pq); !ok {
			b.Fatal("refused")
		}
	}
}
