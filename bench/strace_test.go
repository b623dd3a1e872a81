package main

import (
	"errors"
	"testing"
)

const straceSummary = `strace: Process 4242 attached with 3 threads
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 97.23    0.646851          31     20780      1670 splice
  2.07    0.013756          38       359           epoll_wait
  0.14    0.000938         104         9         9 connect
  0.07    0.000479          47        10         1 recvfrom
  0.02    0.000104          52         2           write
------ ----------- ----------- --------- --------- ----------------
100.00    0.665267          31     21160      1680 total
`

func TestParseStraceSummary(t *testing.T) {
	got, err := parseStraceSummary(straceSummary)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]syscallCount{
		"splice": {20780, 1670}, "epoll_wait": {359, 0}, "connect": {9, 9}, "recvfrom": {10, 1}, "write": {2, 0},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %+v, want %+v", k, got[k], v)
		}
	}
	if n := sumCalls(got, readCalls); n != 10 {
		t.Errorf("read family: %d calls, want 10", n)
	}

	bad := []struct{ name, in string }{
		{"no table", "strace: attach: ptrace(PTRACE_SEIZE, 1): Operation not permitted\n"},
		{"short row", "% time seconds usecs/call calls errors syscall\n 1.0 0.1 splice\n"},
		{"negative calls", "% time seconds usecs/call calls errors syscall\n 1.0 0.1 3 -4 splice\n"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseStraceSummary(tt.in); !errors.Is(err, errStraceFormat) {
				t.Errorf("err %v, want errStraceFormat", err)
			}
		})
	}
}

func TestParseStraceEmptyTable(t *testing.T) {
	// A proxy that made none of the traced calls: a header and a zero total.
	in := "% time     seconds  usecs/call     calls    errors syscall\n" +
		"------ ----------- ----------- --------- --------- ----------------\n" +
		"100.00    0.000000           0         0           total\n"
	got, err := parseStraceSummary(in)
	if err != nil || len(got) != 0 {
		t.Errorf("got %v, %v; want an empty count", got, err)
	}
}

func FuzzParseStraceSummary(f *testing.F) {
	f.Add(straceSummary)
	f.Add("% x\n 1 2 3 4 5 6\n")
	f.Fuzz(func(t *testing.T, in string) {
		m, err := parseStraceSummary(in)
		for name, c := range m {
			if err != nil || c.Calls < 0 || c.Errors < 0 || name == "total" {
				t.Fatalf("%s %+v (err %v) from %q", name, c, err, in)
			}
		}
	})
}
