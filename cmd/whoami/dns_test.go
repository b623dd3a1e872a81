package main

import (
	"context"
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"
)

// txtQuery builds a query for name TXT IN.
func txtQuery(id uint16, name string, qtype uint16) []byte {
	q := make([]byte, 12, 64)
	binary.BigEndian.PutUint16(q[0:], id)
	binary.BigEndian.PutUint16(q[2:], 0x0100)
	binary.BigEndian.PutUint16(q[4:], 1)
	for _, label := range strings.Split(name, ".") {
		q = append(q, byte(len(label)))
		q = append(q, label...)
	}
	q = append(q, 0)
	q = binary.BigEndian.AppendUint16(q, qtype)
	return binary.BigEndian.AppendUint16(q, classIN)
}

func TestDNSAnswersTXTWithItsName(t *testing.T) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&DNS{Name: "db-1"}).Serve(ctx, c) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	cl, err := net.Dial("udp", c.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	tests := []struct {
		name    string
		query   []byte
		rcode   byte
		answers uint16
		txt     string
	}{
		{"txt", txtQuery(0x1234, "whoami.example", typeTXT), 0, 1, "db-1"},
		{"a", txtQuery(0x1235, "whoami", 1), 0, 0, ""},
		{"two questions", func() []byte {
			q := txtQuery(0x1236, "x", typeTXT)
			q[5] = 2
			return q
		}(), rcodeFormat, 0, ""},
		{"truncated", txtQuery(0x1237, "whoami", typeTXT)[:15], rcodeFormat, 0, ""},
	}
	buf := make([]byte, 1500)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_ = cl.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := cl.Write(tt.query); err != nil {
				t.Fatal(err)
			}
			n, err := cl.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			m := buf[:n]
			if binary.BigEndian.Uint16(m) != binary.BigEndian.Uint16(tt.query) || m[2]&0x80 == 0 {
				t.Fatalf("not our response: % x", m)
			}
			if rc := m[3] & 0x0f; rc != tt.rcode {
				t.Fatalf("rcode %d, want %d", rc, tt.rcode)
			}
			if an := binary.BigEndian.Uint16(m[6:]); an != tt.answers {
				t.Fatalf("%d answers, want %d", an, tt.answers)
			}
			if tt.txt != "" && !strings.HasSuffix(string(m), "\x04"+tt.txt) {
				t.Fatalf("answer % x does not end with TXT %q", m, tt.txt)
			}
		})
	}
}

func FuzzDNSAnswer(f *testing.F) {
	f.Add(txtQuery(1, "whoami", typeTXT))
	f.Add(txtQuery(2, "a.b.c", 1))
	f.Add([]byte{0, 1, 0x78, 0, 0, 1})
	f.Fuzz(func(t *testing.T, q []byte) {
		out, err := dnsAnswer(nil, q, "name")
		if err != nil {
			return
		}
		if len(out) < 12 || out[0] != q[0] || out[1] != q[1] || out[2]&0x80 == 0 {
			t.Fatalf("response % x to % x", out, q)
		}
	})
}
