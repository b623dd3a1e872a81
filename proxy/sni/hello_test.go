package sni

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"
)

// clientHello returns the ClientHello a crypto/tls client writes for cfg
// (InsecureSkipVerify is set: no server answers). Go's defaults offer an
// X25519MLKEM768 key share, so the hello is a post-quantum one of ~1.3 KB.
func clientHello(t testing.TB, cfg *tls.Config) []byte {
	t.Helper()
	cfg = cfg.Clone()
	cfg.InsecureSkipVerify = true
	cc, sc := net.Pipe()
	t.Cleanup(func() { cc.Close(); sc.Close() })
	go func() {
		// Fails once the server side closes; the hello was written by then.
		_ = tls.Client(cc, cfg).Handshake()
	}()
	var (
		r   Reader
		buf []byte
		p   = make([]byte, 4096)
	)
	for {
		n, err := sc.Read(p)
		if err != nil {
			t.Fatalf("read ClientHello: %v", err)
		}
		buf = append(buf, p[:n]...)
		end, err := r.Next(buf)
		if err != nil {
			t.Fatalf("frame ClientHello: %v", err)
		}
		if end > 0 {
			sc.Close()
			return buf[:end]
		}
	}
}

// twoRecords re-frames a one-record hello's handshake message into two
// records split at the message byte at.
func twoRecords(hello []byte, at int) []byte {
	msg := hello[recordHeaderLen:]
	var out []byte
	for _, part := range [][]byte{msg[:at], msg[at:]} {
		out = append(out, recordTypeHS, hello[1], hello[2], byte(len(part)>>8), byte(len(part)))
		out = append(out, part...)
	}
	return out
}

// bigALPN makes a hello whose ALPN extension is about size bytes.
func bigALPN(size int) *tls.Config {
	var protos []string
	for i := 0; i < size/201; i++ {
		protos = append(protos, strings.Repeat(string(rune('a'+i%26)), 200))
	}
	return &tls.Config{ServerName: "big.example.com", NextProtos: protos}
}
