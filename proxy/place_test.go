//go:build linux

package proxy

import (
	"slices"
	"testing"
)

// TestPickLoop: which loop serves a connection, from the loops'
// connection counts and the loop that accepted it.
func TestPickLoop(t *testing.T) {
	tests := []struct {
		name  string
		loads []int32
		self  int
		want  int
	}{
		{"a loop holding a connection keeps the next", []int32{1, 0}, 0, 0},
		{"and the one after", []int32{2, 0}, 0, 0},
		{"three more than an idle loop: the idle loop", []int32{3, 0}, 0, 1},
		{"an idle loop passes it to the first loop within the slack", []int32{1, 0}, 1, 0},
		{"all idle: the first loop", []int32{0, 0}, 1, 0},
		{"an idle loop keeps it when the others hold too many", []int32{3, 0}, 1, 1},
		{"once two loops hold some, a difference of one moves it", []int32{3, 2}, 0, 1},
		{"to an idle loop too", []int32{3, 1, 0}, 0, 2},
		{"equal loads: kept", []int32{3, 3}, 1, 1},
		{"the slack is an eighth of the busier loop", []int32{17, 15}, 0, 0},
		{"past the slack: the least loaded", []int32{17, 14, 15}, 0, 1},
		{"a stopped loop takes nothing", []int32{-1, 0}, 1, 1},
		{"past a stopped loop", []int32{5, -1, 0}, 0, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pickLoop(tt.loads, tt.self); got != tt.want {
				t.Errorf("pickLoop(%v, %d) = %d, want %d", tt.loads, tt.self, got, tt.want)
			}
		})
	}
}

// TestPickLoopSpreadsBursts: connections that all arrive at one loop and
// stay open spread evenly once there are enough of them, and a few at a
// time stay on one loop.
func TestPickLoopSpreadsBursts(t *testing.T) {
	tests := []struct {
		name  string
		loops int
		conns int
		want  []int32
	}{
		{"8 bulk connections on 2 loops", 2, 8, []int32{4, 4}},
		{"64 connections on 2 loops, within an eighth", 2, 64, []int32{34, 30}},
		{"16 connections on 4 loops", 4, 16, []int32{4, 4, 4, 4}},
		{"8 connections on 8 loops", 8, 8, []int32{3, 1, 1, 1, 1, 1, 0, 0}},
		{"3 connections on 2 loops", 2, 3, []int32{3, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loads := make([]int32, tt.loops)
			for range tt.conns {
				loads[pickLoop(loads, 0)]++
			}
			if !slices.Equal(loads, tt.want) {
				t.Errorf("connections per loop %v, want %v", loads, tt.want)
			}
		})
	}
}
