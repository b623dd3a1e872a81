package main

import (
	"net"
	"testing"
	"time"
)

// ptrServer answers every query on a loopback UDP socket with answer(query).
func ptrServer(t *testing.T, answer func(q []byte) []byte) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(answer(buf[:n]), from)
		}
	}()
	return pc.LocalAddr().String()
}

// reply turns query q into a response with one PTR answer for name,
// compressed against the question as Docker's DNS does.
func reply(q []byte, name string) []byte {
	r := append([]byte(nil), q...)
	r[2] |= 0x80
	r[7] = 1 // ANCOUNT
	r = append(r, 0xc0, 12, 0, 12, 0, 1, 0, 0, 2, 88)
	var rdata []byte
	for _, l := range []string{name, "three-tier_app"} {
		rdata = append(rdata, byte(len(l)))
		rdata = append(rdata, l...)
	}
	rdata = append(rdata, 0)
	r = append(r, byte(len(rdata)>>8), byte(len(rdata)))
	return append(r, rdata...)
}

func TestLookupPTR(t *testing.T) {
	tests := []struct {
		name    string
		answer  func(q []byte) []byte
		want    string
		wantErr bool
	}{
		{name: "answer", answer: func(q []byte) []byte { return reply(q, "three-tier_app_2") }, want: "three-tier_app_2.three-tier_app"},
		{name: "nxdomain", answer: func(q []byte) []byte { r := append([]byte(nil), q...); r[2] |= 0x80; r[3] |= 3; return r }, wantErr: true},
		{name: "no answer", answer: func(q []byte) []byte { r := append([]byte(nil), q...); r[2] |= 0x80; return r }, wantErr: true},
		{name: "wrong id", answer: func(q []byte) []byte { r := reply(q, "x"); r[0] ^= 0xff; return r }, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			server := ptrServer(t, tt.answer)
			got, err := lookupPTR(server, net.IPv4(172, 31, 0, 2).To4(), time.Second)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got %q, want an error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestPTRQueryName(t *testing.T) {
	q := ptrQuery(1, net.IPv4(172, 31, 0, 2).To4())
	name, end, err := readName(q, 12)
	if err != nil || name != "2.0.31.172.in-addr.arpa" || end != len(q)-4 {
		t.Fatalf("query name %q end %d err %v", name, end, err)
	}
}

func FuzzParsePTRAnswer(f *testing.F) {
	q := ptrQuery(0x7a3b, net.IPv4(10, 0, 0, 1).To4())
	f.Add(reply(q, "web-1"))
	f.Add([]byte{0x7a, 0x3b, 0x80, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0xc0, 12})
	f.Fuzz(func(t *testing.T, m []byte) {
		name, err := parsePTRAnswer(m, 0x7a3b)
		if err == nil && len(name) > len(m)*64 {
			t.Fatalf("name of %d bytes from a %d-byte message", len(name), len(m))
		}
	})
}
