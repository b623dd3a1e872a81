package main

import (
	"errors"
	"testing"
)

const iperfJSON = `{
	"start": {"version": "iperf 3.12"},
	"intervals": [],
	"end": {
		"sum_sent": {"start": 0, "end": 1.000588, "seconds": 1.000588, "bytes": 332922880, "retransmits": 17, "sender": true},
		"sum_received": {"start": 0, "end": 1.000698, "seconds": 1.000698, "bytes": 325976064, "bits_per_second": 2605989531.3, "sender": true}
	}
}`

func TestParseIperf(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		wantMBps  float64
		wantErr   error
		anyErrMsg bool
	}{
		{name: "receiver sum", in: iperfJSON, wantMBps: 325976064 / 1.000698 / 1e6},
		{name: "server busy", in: `{"start": {}, "end": {}, "error": "the server is busy running a test. try again later"}`, anyErrMsg: true},
		{name: "no end", in: `{"start": {}}`, wantErr: errIperfFormat},
		{name: "zero seconds", in: `{"end": {"sum_received": {"bytes": 5, "seconds": 0}}}`, wantErr: errIperfFormat},
		{name: "negative bytes", in: `{"end": {"sum_received": {"bytes": -5, "seconds": 1}}}`, wantErr: errIperfFormat},
		{name: "not json", in: "iperf3: error - unable to connect to server", wantErr: errIperfFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseIperf([]byte(tt.in))
			switch {
			case tt.anyErrMsg:
				if err == nil {
					t.Fatal("an iperf3 error was accepted")
				}
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err %v, want %v", err, tt.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case got.MBps() != tt.wantMBps:
				t.Errorf("MB/s %v, want %v", got.MBps(), tt.wantMBps)
			}
		})
	}
}

// iperfUDPJSON is iperf3 3.12's -u -J end section, cut down.
const iperfUDPJSON = `{"end": {
	"sum": {"seconds": 1.000644, "bytes": 1250200, "lost_packets": 3, "packets": 893, "lost_percent": 0.34, "sender": true},
	"sum_received": {"seconds": 1.000644, "bytes": 1250200, "lost_packets": 3, "packets": 893, "lost_percent": 0.34, "sender": false}}}`

func TestParseIperfUDP(t *testing.T) {
	got, err := parseIperf([]byte(iperfUDPJSON))
	if err != nil {
		t.Fatal(err)
	}
	if got.Datagrams != 890 || got.Lost != 3 {
		t.Errorf("datagrams %v lost %v, want 890 received and 3 lost", got.Datagrams, got.Lost)
	}
	for _, bad := range []string{
		`{"end": {"sum_received": {"bytes": 5, "seconds": 1, "packets": 2, "lost_packets": 3}}}`,
		`{"end": {"sum_received": {"bytes": 5, "seconds": 1, "packets": 2, "lost_packets": -1}}}`,
	} {
		if _, err := parseIperf([]byte(bad)); !errors.Is(err, errIperfFormat) {
			t.Errorf("%s: err %v, want errIperfFormat", bad, err)
		}
	}
}

func FuzzParseIperf(f *testing.F) {
	f.Add(iperfUDPJSON)
	f.Add(iperfJSON)
	f.Add(`{"error": "x"}`)
	f.Add(`{"end": {"sum_received": {"bytes": 1e308, "seconds": 1e-308}}}`)
	f.Fuzz(func(t *testing.T, in string) {
		r, err := parseIperf([]byte(in))
		if err == nil && (!(r.Seconds > 0) || !(r.Bytes >= 0) || !(r.Datagrams >= 0) || !(r.Lost >= 0)) {
			t.Fatalf("accepted %+v from %q", r, in)
		}
	})
}
