package backends

import (
	"net/netip"
	"testing"
)

func TestHoldUntilCheckedKeepsNewBackendsOutUntilAVerdict(t *testing.T) {
	tests := []struct {
		name     string
		hold     bool
		wantPool int
	}{
		{name: "held", hold: true, wantPool: 0},
		{name: "not held", hold: false, wantPool: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSet("app", RoundRobin, SetOptions{HoldUntilChecked: tt.hold})
			t.Cleanup(s.Close)
			s.Update([]Spec{{ID: "a", Address: "127.0.0.1:1", Weight: 1}})
			if got := s.Pool().Len(); got != tt.wantPool {
				t.Fatalf("pool before any check has %d backends, want %d", got, tt.wantPool)
			}
			b := s.Backend("a")
			if tt.hold {
				if st, why := b.State(); st != StateDown || why != PendingCheck {
					t.Fatalf("state = %v (%q), want down (%q)", st, why, PendingCheck)
				}
			}
			b.SetHealth(true, "tcp connect ok")
			var buf [1]*Backend
			if got := s.Pool().Order(netip.Addr{}, buf[:0]); len(got) != 1 || got[0] != b {
				t.Fatalf("after a passing check Order = %v, want [a]", got)
			}
		})
	}
}

func TestReconfigureKeepsBackendsAndAppliesThePolicy(t *testing.T) {
	s := NewSet("app", RoundRobin, SetOptions{HoldUntilChecked: true})
	t.Cleanup(s.Close)
	s.Update([]Spec{{ID: "a", Address: "127.0.0.1:1", Weight: 1}, {ID: "b", Address: "127.0.0.1:2", Weight: 1}})
	a, b := s.Backend("a"), s.Backend("b")
	a.SetHealth(true, "ok")
	b.SetHealth(true, "ok")
	a.ConnOpened()

	s.Reconfigure(LeastConn, SetOptions{HoldUntilChecked: true, MaxConnsPerBackend: 5})
	if s.Backend("a") != a || a.Total() != 1 {
		t.Fatal("reconfigure replaced a backend or lost its counters")
	}
	if got := s.Pool().Len(); got != 2 {
		t.Fatalf("pool after reconfigure has %d backends, want both (health kept)", got)
	}
	if s.Policy() != LeastConn || s.Options().MaxConnsPerBackend != 5 {
		t.Fatalf("policy %v options %+v not applied", s.Policy(), s.Options())
	}
	var buf [1]*Backend
	for range 4 {
		if got := s.Pool().Order(netip.Addr{}, buf[:0]); got[0] != b {
			t.Fatalf("leastconn picked %s, want b (a has an open connection)", got[0].ID())
		}
	}
}
