package docker

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"

	"github.com/tierlb/tierlb/internal/testkit"
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

// TestSelfInHoldersNetworkNamespace: a proxy started with network_mode
// "container:<holder>" has no networks of its own; it is on the holder's,
// and follows the holder joining another network.
func TestSelfInHoldersNetworkNamespace(t *testing.T) {
	f := newFakeClient()
	holder := fakeCtr{id: "holderid", name: "holder", created: t0, nets: map[string]string{"app": "10.2.0.100"}}
	f.set(holder.inspect())
	me := proxyCtr(nil).inspect()
	me.HostConfig.NetworkMode = "container:holderid"
	f.set(me)
	f.set(appCtr("1", map[string]string{"app": "10.2.0.1"}).inspect())
	f.set(appCtr("2", map[string]string{"web": "10.1.0.2"}).inspect())
	sink := newFakeSink()
	p := startProvider(t, Config{ContainerID: "proxyid"}, []ServiceSelector{{Name: "app"}}, f, sink)
	testkit.Eventually(t, 2*time.Second, "first sync", func() bool { ok, _ := p.Ready(); return ok })
	if got := specSummary(sink); got != "app-1=10.2.0.1:8080" {
		t.Fatalf("specs %s, want app-1 on the holder's network", got)
	}
	if got := p.me.String(); !strings.Contains(got, "in the network namespace of holder (holderid)") || !strings.Contains(got, "on networks [app]") {
		t.Fatalf("self = %q", got)
	}
	holder.nets["web"] = "10.1.0.100"
	f.set(holder.inspect())
	f.send(t, events.Message{Type: events.NetworkEventType, Action: "connect",
		Actor: events.Actor{ID: "id-web", Attributes: map[string]string{"container": "holderid", "name": "web", "type": "bridge"}}})
	testkit.Eventually(t, time.Second, "app-2 routed on web", func() bool { return specSummary(sink) == "app-1=10.2.0.1:8080,app-2=10.1.0.2:8080" })
}

func TestSelfNetworkModeErrors(t *testing.T) {
	tests := []struct {
		name    string
		ctrs    map[string]string // id → network mode
		wantErr string
		wantOn  bool
	}{
		{"holder gone", map[string]string{"proxyid": "container:gone"}, "container gone whose network namespace tierlb joins", false},
		{"loop", map[string]string{"proxyid": "container:a", "a": "container:proxyid"}, "more than 4 containers joined", false},
		{"holder on the host", map[string]string{"proxyid": "container:a", "a": "host"}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeClient()
			for id, mode := range tt.ctrs {
				c := fakeCtr{id: id, name: "tierlb", created: t0}.inspect()
				c.HostConfig.NetworkMode = container.NetworkMode(mode)
				f.set(c)
			}
			p, err := New(Config{}, nil, newFakeSink(), Options{Client: f})
			if err != nil {
				t.Fatal(err)
			}
			me, err := p.inspectSelf(t.Context(), "proxyid")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || me.OnHost != tt.wantOn || !strings.Contains(me.String(), "with host networking") {
				t.Fatalf("self %+v (%s), %v", me, me, err)
			}
		})
	}
}
