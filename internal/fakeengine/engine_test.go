package fakeengine

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// start serves a new engine on a socket in the test's directory and
// returns it with a client that negotiates its version, as tierlb's does.
func start(t *testing.T) (*Engine, *client.Client) {
	t.Helper()
	e := New(Options{Port: 8080})
	host, err := e.Listen(filepath.Join(t.TempDir(), "docker.sock"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Serve(ctx) }()
	cli, err := client.New(client.WithHost(host))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cli.Close()
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return e, cli
}

func TestNegotiatesDownTo141(t *testing.T) {
	e, cli := start(t)
	ctx := t.Context()
	ping, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	if err != nil {
		t.Fatal(err)
	}
	if ping.APIVersion != APIVersion || cli.ClientVersion() != APIVersion {
		t.Fatalf("ping says %s, client uses %s; want %s", ping.APIVersion, cli.ClientVersion(), APIVersion)
	}
	if ping.SwarmStatus == nil || ping.SwarmStatus.NodeState != "inactive" {
		t.Fatalf("swarm status %+v, want inactive", ping.SwarmStatus)
	}
	info, err := cli.Info(ctx, client.InfoOptions{})
	if err != nil || info.Info.Swarm.LocalNodeState != "inactive" {
		t.Fatalf("info: %+v, %v", info.Info.Swarm, err)
	}
	if _, err := cli.ServiceList(ctx, client.ServiceListOptions{}); !cerrdefs.IsUnavailable(err) {
		t.Fatalf("service list outside Swarm: %v, want unavailable", err)
	}

	// A client that insists on a newer version is refused as the daemon does.
	newer, err := client.New(client.WithHost(cli.DaemonHost()), client.WithAPIVersion("1.45"))
	if err != nil {
		t.Fatal(err)
	}
	defer newer.Close()
	_, err = newer.ContainerList(ctx, client.ContainerListOptions{})
	if err == nil || !strings.Contains(err.Error(), "client version 1.45 is too new. Maximum supported API version is 1.41") {
		t.Fatalf("a 1.45 client got %v", err)
	}
	got := e.Requests()
	if got["HEAD /_ping"] < 1 || got["GET /info"] != 1 || got["GET /services"] != 1 || got["GET bad version"] != 1 {
		t.Fatalf("requests counted: %v", got)
	}
}

func TestListAndInspect(t *testing.T) {
	e, cli := start(t)
	ctx := t.Context()
	a, _ := e.Run("a", map[string]string{"tierlb.service": "app", "tier": "web"})
	b, _ := e.Run("b", map[string]string{"tierlb.service": "db"})
	_, _ = e.Run("c", nil)
	if err := e.BeginStop(b.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.FinishStop(b.ID); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts client.ContainerListOptions
		want string
	}{
		{"running", client.ContainerListOptions{}, "a c"},
		{"all", client.ContainerListOptions{All: true}, "a b c"},
		{"label key", client.ContainerListOptions{Filters: make(client.Filters).Add("label", "tierlb.service")}, "a"},
		{"label key=value", client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", "tierlb.service=db")}, "b"},
		{"two labels", client.ContainerListOptions{Filters: make(client.Filters).Add("label", "tierlb.service", "tier=web")}, "a"},
		{"status", client.ContainerListOptions{Filters: make(client.Filters).Add("status", "exited")}, "b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := cli.ContainerList(ctx, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, s := range res.Items {
				names = append(names, strings.TrimPrefix(s.Names[0], "/"))
			}
			if got := strings.Join(names, " "); got != tt.want {
				t.Fatalf("listed %q, want %q", got, tt.want)
			}
		})
	}
	res, err := cli.ContainerList(ctx, client.ContainerListOptions{Filters: make(client.Filters).Add("label", "tier=web")})
	if err != nil || len(res.Items) != 1 {
		t.Fatalf("list: %v %v", res.Items, err)
	}
	s := res.Items[0]
	if s.State != "running" || s.NetworkSettings.Networks[NetworkName].IPAddress != a.IP || len(s.Ports) != 1 || s.Ports[0].PrivatePort != 8080 {
		t.Fatalf("summary %+v", s)
	}
	for _, ref := range []string{a.ID, "a", "/a", a.ID[:12]} {
		in, err := cli.ContainerInspect(ctx, ref, client.ContainerInspectOptions{})
		if err != nil || in.Container.ID != a.ID || !in.Container.State.Running || in.Container.NetworkSettings.Networks[NetworkName].IPAddress != a.IP {
			t.Fatalf("inspect %s: %+v, %v", ref, in.Container.State, err)
		}
	}
	if _, err := cli.ContainerInspect(ctx, "nope", client.ContainerInspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Fatalf("inspect of a missing container: %v, want not found", err)
	}
	nets, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: make(client.Filters).Add("driver", "bridge")})
	if err != nil || len(nets.Items) != 1 || nets.Items[0].Name != NetworkName {
		t.Fatalf("bridge networks: %+v, %v", nets.Items, err)
	}
}

// actions reads n events from a stream.
func actions(t *testing.T, res client.EventsResult, n int) string {
	t.Helper()
	var got []string
	timeout := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case m := <-res.Messages:
			got = append(got, fmt.Sprintf("%s:%s", m.Type, m.Action))
		case err := <-res.Err:
			t.Fatalf("stream ended after %v: %v", got, err)
		case <-timeout:
			t.Fatalf("only %v", got)
		}
	}
	return strings.Join(got, " ")
}

func TestEventsInTheDaemonsOrder(t *testing.T) {
	e, cli := start(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	filters := make(client.Filters).Add("type", "container", "network").
		Add("event", "start", "die", "kill", "stop", "health_status", "connect", "disconnect")
	res := cli.Events(ctx, client.EventsListOptions{Filters: filters})
	// Subscribed once the engine counts the request.
	deadline := time.Now().Add(10 * time.Second)
	for e.Requests()["GET /events"] == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	c, err := e.Run("web-1", map[string]string{"tierlb.service": "web"})
	if err != nil {
		t.Fatal(err)
	}
	_ = e.BeginStop(c.ID)
	_ = e.FinishStop(c.ID)
	_ = e.Start(c.ID, true)
	// create and restart are filtered out.
	want := "network:connect container:start container:kill container:die network:disconnect container:stop network:connect container:start"
	if got := actions(t, res, 8); got != want {
		t.Fatalf("events\n got %s\nwant %s", got, want)
	}

	// A subscriber that asks since a time gets what the engine still holds.
	since := time.Now()
	_ = e.BeginStop(c.ID)
	_ = e.FinishStop(c.ID)
	replay := cli.Events(ctx, client.EventsListOptions{Since: fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond()),
		Filters: make(client.Filters).Add("type", "container").Add("event", "kill", "die")})
	if got := actions(t, replay, 2); got != "container:kill container:die" {
		t.Fatalf("replay: %s", got)
	}
	// until in the past: the replay, then the end of the stream.
	until := time.Now()
	ended := cli.Events(ctx, client.EventsListOptions{Since: fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond()), Until: fmt.Sprintf("%d.%09d", until.Unix(), until.Nanosecond()),
		Filters: make(client.Filters).Add("event", "stop")})
	if got := actions(t, ended, 1); got != "container:stop" {
		t.Fatalf("until: %s", got)
	}
	select {
	case err := <-ended.Err:
		if err == nil || !strings.Contains(err.Error(), "EOF") {
			t.Logf("stream ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a stream with until in the past did not end")
	}
	if e.Dropped() != 0 {
		t.Fatalf("%d events dropped", e.Dropped())
	}
}

func TestLoopbackGreetsWithTheAddressDialed(t *testing.T) {
	l, err := ListenLoopback(0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- l.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	for _, ip := range []string{"127.1.0.1", "127.1.39.16", "127.0.0.1"} {
		addr := net.JoinHostPort(ip, fmt.Sprint(l.Port()))
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if err != nil || strings.TrimSpace(line) != addr {
			t.Fatalf("dialed %s, greeted %q (%v)", addr, line, err)
		}
	}
	if l.Accepted() != 3 {
		t.Fatalf("accepted %d", l.Accepted())
	}
}

func TestLoopbackAddresses(t *testing.T) {
	if got := loopbackAddr(0).String(); got != "127.1.0.1" {
		t.Fatalf("first address %s", got)
	}
	if got := loopbackAddr(9999).String(); got != "127.1.39.16" {
		t.Fatalf("10,000th address %s", got)
	}
	seen := map[string]bool{}
	for i := range uint32(70000) {
		a := loopbackAddr(i)
		if !a.IsLoopback() || seen[a.String()] {
			t.Fatalf("address %d: %s", i, a)
		}
		seen[a.String()] = true
	}
}
