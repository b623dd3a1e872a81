package proxy

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/tierlb/tierlb/backends"
)

// nameBackend answers every connection with its name and closes.
func nameBackend(name string) func(net.Conn) {
	return func(c net.Conn) { io.WriteString(c, name) }
}

// ask opens one connection through s and returns what the backend said.
func ask(t *testing.T, s *Service) string {
	t.Helper()
	c := dial(t, s)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	c.Close()
	return string(b)
}

// TestRoundRobinSplit checks the exact Swarm-style split: strict rotation
// with equal weights, smooth weighted round robin otherwise.
func TestRoundRobinSplit(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		conns   int
	}{
		{"equal three", []int{1, 1, 1}, 30},
		{"equal five", []int{1, 1, 1, 1, 1}, 25},
		{"weighted 3:1", []int{3, 1}, 40},
		{"weighted 5:2:1", []int{5, 2, 1}, 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := backends.NewSet("rr", backends.RoundRobin, backends.SetOptions{})
			t.Cleanup(set.Close)
			var specs []backends.Spec
			total := 0
			for i, w := range tt.weights {
				name := fmt.Sprintf("b%d", i)
				be := startBackend(t, nameBackend(name))
				specs = append(specs, backends.Spec{ID: name, Address: be.addr(), Weight: w})
				total += w
			}
			set.Update(specs)
			s := startService(t, Config{ZeroCopy: true}, set)
			got := map[string]int{}
			var seq []string
			for range tt.conns {
				name := ask(t, s)
				got[name]++
				seq = append(seq, name)
			}
			for i, w := range tt.weights {
				name := fmt.Sprintf("b%d", i)
				if want := tt.conns * w / total; got[name] != want {
					t.Errorf("%s got %d connections, want %d (sequence %v)", name, got[name], want, seq)
				}
			}
			if equalWeights(tt.weights) {
				for i := 1; i < len(seq); i++ {
					if seq[i] == seq[i-1] {
						t.Fatalf("strict rotation broken at %d: %v", i, seq)
					}
				}
			}
		})
	}
}

func equalWeights(w []int) bool {
	for _, x := range w {
		if x != w[0] {
			return false
		}
	}
	return true
}
