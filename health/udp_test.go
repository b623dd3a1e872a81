package health

import (
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tierlb/tierlb/internal/testkit"
)

func TestSendExpectOverUDP(t *testing.T) {
	noLeaks(t)
	const timeout = 300 * time.Millisecond
	pong := testkit.UDPServer(t, func(b []byte) []byte {
		if string(b) == "PING" {
			return []byte("noise PONG")
		}
		return []byte("what?")
	})
	// Answers that never match: the checker reads on until the deadline.
	stale := testkit.UDPServer(t, func([]byte) []byte { return []byte("stale") })
	silent := testkit.UDPServer(t, func([]byte) []byte { return nil })
	// Nothing listens there: datagrams to it draw ICMP port unreachable.
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusing := c.LocalAddr().String()
	c.Close()

	tests := []struct {
		name, addr, send, expect string
		ok                       func(error) bool
	}{
		{"answers", pong, "PING", "PONG", func(err error) bool { return err == nil }},
		{"regexp", pong, "PING", "re:^noise P.NG$", func(err error) bool { return err == nil }},
		{"wrong answer", pong, "HELLO", "PONG", func(err error) bool {
			return errors.Is(err, errNoMatch) && strings.Contains(err.Error(), `"what?"`)
		}},
		{"only stale answers", stale, "PING", "PONG", func(err error) bool { return errors.Is(err, errNoMatch) }},
		{"silent", silent, "PING", "PONG", isTimeout},
		{"port unreachable", refusing, "PING", "PONG", func(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }},
		{"empty datagram", pong, "", "what", func(err error) bool { return err == nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ck, err := NewChecker(Config{Type: TypeSendExpect, Network: NetworkUDP, Send: tt.send, Expect: tt.expect}, nil)
			if err != nil {
				t.Fatal(err)
			}
			t0 := time.Now()
			err = ck.Check(probeCtx(t, timeout), tt.addr)
			if !tt.ok(err) {
				t.Fatalf("Check = %v", err)
			}
			if d := time.Since(t0); d > 5*timeout {
				t.Fatalf("Check took %v with a %v timeout", d, timeout)
			}
		})
	}
}

func TestValidateUDP(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // "" : valid
	}{
		{"send-expect", Config{Type: TypeSendExpect, Network: NetworkUDP, Send: "x", Expect: "y"}, ""},
		{"docker", Config{Type: TypeDocker, Network: NetworkUDP}, ""},
		{"none", Config{Type: TypeNone, Network: NetworkUDP}, ""},
		{"tcp", Config{Type: TypeTCP, Network: NetworkUDP}, `health.type: "tcp" checks TCP`},
		{"default type", Config{Network: NetworkUDP}, `health.type: "tcp" checks TCP`},
		{"http", Config{Type: TypeHTTP, Network: NetworkUDP}, `health.type: "http" checks TCP`},
		{"no expect", Config{Type: TypeSendExpect, Network: NetworkUDP, Send: "x"}, "health.expect: send-expect over UDP needs expect"},
		{"unknown network", Config{Type: TypeNone, Network: "sctp"}, `protocol: unknown "sctp"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate = %v, want %q", err, tt.want)
			}
		})
	}
}
