package portcap

import (
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// procFS is a /proc/sys/net/ipv4 with the files a default namespace has,
// less the ones named in drop, with over written over them.
func procFS(over map[string]string, drop ...string) fstest.MapFS {
	files := map[string]string{
		FilePortRange:     "32768\t60999\n",
		FileReservedPorts: "\n",
		FileTWReuse:       "2\n",
		FileTWReuseDelay:  "1000\n",
		FileTimestamps:    "1\n",
	}
	for k, v := range over {
		files[k] = v
	}
	for _, k := range drop {
		delete(files, k)
	}
	fsys := fstest.MapFS{}
	for k, v := range files {
		fsys[k] = &fstest.MapFile{Data: []byte(v), Mode: 0o444}
	}
	return fsys
}

func TestRead(t *testing.T) {
	tests := []struct {
		name      string
		over      map[string]string
		drop      []string
		ports     int
		perSecond float64 // to a backend on a network
		loopback  float64 // to a backend on loopback
		delay     time.Duration
		fixed     bool
	}{
		{name: "default namespace", ports: 28232, perSecond: 28232.0 / 60, loopback: 28232, delay: time.Second},
		{name: "the examples' sysctls",
			over:  map[string]string{FilePortRange: "1024 65535", FileTWReuse: "1"},
			ports: 64512, perSecond: 64512, loopback: 64512, delay: time.Second},
		{name: "reuse without timestamps does nothing",
			over:  map[string]string{FileTWReuse: "1", FileTimestamps: "0"},
			ports: 28232, perSecond: 28232.0 / 60, loopback: 28232.0 / 60, delay: time.Second},
		{name: "timestamps without random offsets count",
			over:  map[string]string{FileTWReuse: "1", FileTimestamps: "2"},
			ports: 28232, perSecond: 28232, loopback: 28232, delay: time.Second},
		{name: "reuse off",
			over:  map[string]string{FileTWReuse: "0"},
			ports: 28232, perSecond: 28232.0 / 60, loopback: 28232.0 / 60, delay: time.Second},
		{name: "shorter reuse delay",
			over:  map[string]string{FileTWReuse: "1", FileTWReuseDelay: "250"},
			ports: 28232, perSecond: 28232 * 4, loopback: 28232 * 4, delay: 250 * time.Millisecond},
		{name: "kernel before tcp_tw_reuse_delay", over: map[string]string{FileTWReuse: "1"}, drop: []string{FileTWReuseDelay},
			ports: 28232, perSecond: 28232, loopback: 28232, delay: time.Second, fixed: true},
		{name: "reserved ports inside and outside the range",
			over:  map[string]string{FileReservedPorts: "8080,32768-32777,32770,60990-61010\n"},
			ports: 28232 - 10 - 10, perSecond: float64(28232-20) / 60, loopback: 28232 - 20, delay: time.Second},
		{name: "a range of one port", over: map[string]string{FilePortRange: "40000 40000"},
			ports: 1, perSecond: 1.0 / 60, loopback: 1, delay: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Read(procFS(tt.over, tt.drop...))
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Ports(); got != tt.ports {
				t.Errorf("Ports() = %d, want %d", got, tt.ports)
			}
			if got := s.PerSecond(false); got != tt.perSecond {
				t.Errorf("PerSecond(false) = %v, want %v", got, tt.perSecond)
			}
			if got := s.PerSecond(true); got != tt.loopback {
				t.Errorf("PerSecond(true) = %v, want %v", got, tt.loopback)
			}
			if s.ReuseDelay != tt.delay || s.ReuseDelayFixed != tt.fixed {
				t.Errorf("ReuseDelay = %v (fixed %v), want %v (fixed %v)", s.ReuseDelay, s.ReuseDelayFixed, tt.delay, tt.fixed)
			}
		})
	}
}

func TestReadErrors(t *testing.T) {
	tests := []struct {
		name string
		over map[string]string
		drop []string
		want []string // each must be in the error
	}{
		{name: "missing range", drop: []string{FilePortRange}, want: []string{"read ip_local_port_range"}},
		{name: "missing reuse", drop: []string{FileTWReuse}, want: []string{"read tcp_tw_reuse:"}},
		{name: "one port", over: map[string]string{FilePortRange: "32768"}, want: []string{"ip_local_port_range", "want two ports"}},
		{name: "three ports", over: map[string]string{FilePortRange: "1 2 3"}, want: []string{"ip_local_port_range"}},
		{name: "reversed range", over: map[string]string{FilePortRange: "60999 32768"}, want: []string{"ip_local_port_range", "above"}},
		{name: "port too high", over: map[string]string{FilePortRange: "1024 70000"}, want: []string{"ip_local_port_range", "0 to 65535"}},
		{name: "not a number", over: map[string]string{FileTWReuse: "yes"}, want: []string{"tcp_tw_reuse", "want 0 to 2"}},
		{name: "reuse 3", over: map[string]string{FileTWReuse: "3"}, want: []string{"tcp_tw_reuse"}},
		{name: "timestamps -1", over: map[string]string{FileTimestamps: "-1"}, want: []string{"tcp_timestamps"}},
		{name: "delay 0", over: map[string]string{FileTWReuseDelay: "0"}, want: []string{"tcp_tw_reuse_delay", "at least 1"}},
		{name: "delay text", over: map[string]string{FileTWReuseDelay: "1s"}, want: []string{"tcp_tw_reuse_delay", "milliseconds"}},
		{name: "reserved garbage", over: map[string]string{FileReservedPorts: "80,x"}, want: []string{"ip_local_reserved_ports", `"x"`}},
		{name: "reserved reversed", over: map[string]string{FileReservedPorts: "90-80"}, want: []string{"ip_local_reserved_ports", "above"}},
		{name: "every problem at once",
			over: map[string]string{FileTWReuse: "9", FileTimestamps: "x"}, drop: []string{FilePortRange},
			want: []string{"ip_local_port_range", "tcp_tw_reuse", "tcp_timestamps"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Read(procFS(tt.over, tt.drop...))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:80": true, "127.3.2.1:80": true, "[::1]:80": true, "[::ffff:127.0.0.1]:80": true,
		"10.0.0.1:80": false, "[fe80::1]:80": false, "app:80": false, "": false,
	} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestString(t *testing.T) {
	s, err := Read(procFS(nil))
	if err != nil {
		t.Fatal(err)
	}
	got := s.String()
	for _, w := range []string{"470 new connections/s per backend address", "28232 local ports 32768-60999", "held 1m0s", "tcp_tw_reuse=2 (loopback only)", "28232/s to a backend on loopback"} {
		if !strings.Contains(got, w) {
			t.Errorf("String() = %q, want it to say %q", got, w)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"32768\t60999\n", "1024 65535", "", "8080,9000-9010\n", "1-", "-1", "65536 1", "1,,2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if lo, hi, err := ParsePortRange(v); err == nil && (lo < 0 || hi > 65535 || lo > hi) {
			t.Fatalf("ParsePortRange(%q) = %d, %d without an error", v, lo, hi)
		}
		spans, err := ParseReservedPorts(v)
		if err != nil {
			return
		}
		for _, sp := range spans {
			if sp.Low < 0 || sp.High > 65535 || sp.Low > sp.High {
				t.Fatalf("ParseReservedPorts(%q) gave %v", v, sp)
			}
		}
		if n := reservedIn(spans, 1024, 65535); n < 0 || n > 64512 {
			t.Fatalf("reservedIn = %d", n)
		}
		s, err := Read(procFS(map[string]string{FilePortRange: v, FileReservedPorts: v}))
		if err == nil && (s.Ports() < 0 || s.PerSecond(false) < 0) {
			t.Fatalf("Read with %q: %+v", v, s)
		}
	})
}
