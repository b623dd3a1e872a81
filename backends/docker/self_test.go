package docker

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const id64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestIDFromMountinfo(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"hostname bind mount", "1 2 0:1 /var/lib/docker/containers/" + id64 + "/hostname /etc/hostname rw - ext4 /dev/sda1 rw\n", id64},
		{"cgroup v1 path", "5 1 0:2 /docker/" + id64 + " /sys/fs/cgroup/cpu ro - cgroup cgroup rw\n", id64},
		{"systemd scope", "5 1 0:2 /system.slice/docker-" + id64 + ".scope /sys/fs/cgroup ro - cgroup2 cgroup rw\n", id64},
		{"host", "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n", ""},
		{"too short", "1 2 0:1 /var/lib/docker/containers/0123456789ab/hostname /etc/hostname rw\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := idFromMountinfo([]byte(tt.in)); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func FuzzIDFromMountinfo(f *testing.F) {
	f.Add("1 2 0:1 /var/lib/docker/containers/" + id64 + "/hostname /etc/hostname rw\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, in string) {
		got := idFromMountinfo([]byte(in))
		if got != "" && (len(got) != 64 || strings.Trim(got, "0123456789abcdef") != "" || !strings.Contains(in, got)) {
			t.Fatalf("bad id %q from %q", got, in)
		}
	})
}

func TestFindSelf(t *testing.T) {
	proxy := proxyCtr(map[string]string{"b": "10.0.2.9", "a": "10.0.1.9"})
	proxy.id = id64
	tests := []struct {
		name      string
		env       map[string]string
		mountinfo string
		wantID    string
		wantErr   string
	}{
		{name: "env", env: map[string]string{"TIERLB_CONTAINER_ID": id64}, wantID: id64},
		{name: "mountinfo", mountinfo: "1 2 0:1 /var/lib/docker/containers/" + id64 + "/hostname /etc/hostname rw\n", wantID: id64},
		{name: "hostname prefix", env: map[string]string{"HOSTNAME": id64[:12]}, wantID: id64},
		{name: "hostname that is not an id", env: map[string]string{"HOSTNAME": "buildhost"}, wantID: ""},
		{name: "foreign mountinfo id falls through", mountinfo: "/var/lib/docker/containers/" + strings.Repeat("f", 64) + "/hostname\n", wantID: ""},
		{name: "explicit id missing", env: map[string]string{"TIERLB_CONTAINER_ID": "gone"}, wantErr: "own container gone (from TIERLB_CONTAINER_ID)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeClient()
			f.set(proxy.inspect())
			p, err := New(Config{}, nil, newFakeSink(), Options{Client: f})
			if err != nil {
				t.Fatal(err)
			}
			p.getenv = func(k string) string { return tt.env[k] }
			p.readFile = func(string) ([]byte, error) {
				if tt.mountinfo == "" {
					return nil, errors.New("none")
				}
				return []byte(tt.mountinfo), nil
			}
			me, err := p.findSelf(t.Context())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if me.ID != tt.wantID || me.OnHost != (tt.wantID == "") {
				t.Fatalf("self = %+v, want ID %q", me, tt.wantID)
			}
			if tt.wantID != "" && networkNames(me.Networks) != "a b" {
				t.Fatalf("networks %q not sorted by name", networkNames(me.Networks))
			}
		})
	}
}

func TestBackoffJitter(t *testing.T) {
	for range 100 {
		if d := jitter(time.Second); d < 800*time.Millisecond || d > 1200*time.Millisecond {
			t.Fatalf("jitter(1s) = %s", d)
		}
	}
}
