package docker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// inspectRowOf is the inspectRow tierlb reads from the engine's JSON of r.
func inspectRowOf(tb testing.TB, r container.InspectResponse) *inspectRow {
	tb.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		tb.Fatal(err)
	}
	row, err := decodeInspect(bytes.NewReader(b), new(bytes.Buffer))
	if err != nil {
		tb.Fatal(err)
	}
	return row
}

// recordFromSDK is the record as read through the SDK's type: the
// reference the trimmed row is held to.
func recordFromSDK(r container.InspectResponse, prefix string) (c *ctr, ok bool) {
	if r.State == nil || !r.State.Running || r.State.Restarting {
		return nil, false
	}
	c = &ctr{
		ID:     r.ID,
		Name:   strings.TrimPrefix(r.Name, "/"),
		Paused: r.State.Paused,
		Health: string(container.NoHealthcheck),
	}
	if t, err := time.Parse(time.RFC3339Nano, r.Created); err == nil {
		c.Created = unixNano(t)
	}
	if r.State.Health != nil && r.State.Health.Status != "" {
		c.Health = string(r.State.Health.Status)
	}
	var labels map[string]string
	var stopSignal string
	var exposed []int
	if r.Config != nil {
		labels = r.Config.Labels
		c.Labels = newLabelSet(labels)
		stopSignal = r.Config.StopSignal
		for p := range r.Config.ExposedPorts {
			if p.Proto() == "tcp" {
				exposed = append(exposed, int(p.Num()))
			}
		}
		slices.Sort(exposed)
		exposed = slices.Compact(exposed)
	}
	c.run = newRunFacts(r.State.StartedAt, stopSignal, exposed)
	if r.NetworkSettings != nil {
		for name, ep := range r.NetworkSettings.Networks {
			if ep == nil {
				continue
			}
			ip := ep.IPAddress
			if !ip.IsValid() {
				ip = ep.GlobalIPv6Address
			}
			c.Endpoints = append(c.Endpoints, newEndpoint(name, ep.NetworkID, ip))
		}
		sortEndpoints(c.Endpoints)
	}
	c.labels = parse(prefix, labels)
	return c, true
}

// selfFacts is what inspectSelf reads of one inspect: the network mode and
// each network's IPv4 address.
func selfFacts(mode container.NetworkMode, nets map[string]string) string {
	return fmt.Sprintf("%s %v", mode, nets)
}

func selfFactsOfRow(r *inspectRow) string {
	var mode container.NetworkMode
	if r.HostConfig != nil {
		mode = r.HostConfig.NetworkMode
	}
	nets := map[string]string{}
	if r.NetworkSettings != nil {
		for name, ep := range r.NetworkSettings.Networks {
			if ep != nil {
				nets[name] = ep.NetworkID + "=" + ep.IPAddress.String()
			}
		}
	}
	return selfFacts(mode, nets)
}

func selfFactsOfSDK(r container.InspectResponse) string {
	var mode container.NetworkMode
	if r.HostConfig != nil {
		mode = r.HostConfig.NetworkMode
	}
	nets := map[string]string{}
	if r.NetworkSettings != nil {
		for name, ep := range r.NetworkSettings.Networks {
			if ep != nil {
				nets[name] = ep.NetworkID + "=" + ep.IPAddress.String()
			}
		}
	}
	return selfFacts(mode, nets)
}

// sameAsSDK decodes body through the SDK's type and through inspectRow and
// fails unless both give the same record, health and self facts. It
// returns false, without failing, when the SDK's type does not read body.
func sameAsSDK(t *testing.T, body []byte) bool {
	t.Helper()
	var sdk container.InspectResponse
	if json.Unmarshal(body, &sdk) != nil {
		return false
	}
	row, err := decodeInspect(bytes.NewReader(body), new(bytes.Buffer))
	if err != nil {
		t.Fatalf("trimmed decode: %v; the SDK's type reads it", err)
	}
	want, wantOK := recordFromSDK(sdk, "tierlb")
	got, gotOK := fromInspect(row, "tierlb")
	if gotOK != wantOK || !reflect.DeepEqual(got, want) {
		t.Fatalf("record %+v (%v), want %+v (%v)", got, gotOK, want, wantOK)
	}
	var wantHealth string
	if sdk.State != nil && sdk.State.Health != nil {
		wantHealth = string(sdk.State.Health.Status)
	}
	if h := row.health(); h != wantHealth {
		t.Fatalf("health %q, want %q", h, wantHealth)
	}
	if got, want := selfFactsOfRow(row), selfFactsOfSDK(sdk); got != want {
		t.Fatalf("self facts %s, want %s", got, want)
	}
	return true
}

// inspectCases are inspect answers of the shapes tierlb meets: a real
// engine's (trimmed of its host's paths), and hand-written corners.
var inspectCases = []struct{ name, body string }{
	{"running, paused", `{"Id":"c1","Name":"/app-1","Created":"2026-01-02T03:04:05.123456789Z",
		"State":{"Status":"paused","Running":true,"Paused":true,"StartedAt":"2026-01-02T03:04:06Z"},
		"Config":{"Labels":{"tierlb.service":"app","tierlb.port":"8080"},"ExposedPorts":{"8080/tcp":{},"53/udp":{},"80/tcp":{}}},
		"HostConfig":{"NetworkMode":"app"},
		"NetworkSettings":{"Networks":{"app":{"NetworkID":"n1","IPAddress":"10.0.0.2","Aliases":["app"]}}}}`},
	{"restarting", `{"Id":"c2","Name":"/app-2","State":{"Status":"restarting","Running":true,"Restarting":true},"Config":{"Labels":{"tierlb.service":"app"}}}`},
	{"exited", `{"Id":"c3","Name":"/app-3","State":{"Status":"exited","Running":false,"ExitCode":137}}`},
	{"health starting", `{"Id":"c4","Name":"/app-4","State":{"Running":true,"StartedAt":"2026-01-02T03:04:06.5Z",
		"Health":{"Status":"starting","FailingStreak":0,"Log":[]}},"Config":{"Labels":{"tierlb.service":"app"},"StopSignal":"SIGQUIT"}}`},
	{"unhealthy", `{"Id":"c5","Name":"/app-5","State":{"Running":true,"Health":{"Status":"unhealthy","FailingStreak":3,
		"Log":[{"Start":"2026-01-02T03:04:06Z","End":"2026-01-02T03:04:07Z","ExitCode":1,"Output":"refused"}]}}}`},
	{"empty health", `{"Id":"c6","Name":"/app-6","State":{"Running":true,"Health":{"Status":""}}}`},
	{"IPv6 only", `{"Id":"c7","Name":"/app-7","State":{"Running":true},"Config":{"Labels":{"tierlb.service":"v6"}},
		"NetworkSettings":{"Networks":{"v6":{"NetworkID":"n6","IPAddress":"","GlobalIPv6Address":"fd00::7"}}}}`},
	{"dual stack, two networks", `{"Id":"c8","Name":"/app-8","State":{"Running":true},
		"NetworkSettings":{"Networks":{"z":{"NetworkID":"nz","IPAddress":"10.0.1.8","GlobalIPv6Address":"fd00::8"},"a":{"NetworkID":"na","IPAddress":"10.0.2.8"},"gone":null}}}`},
	{"no networks", `{"Id":"c9","Name":"/app-9","State":{"Running":true},"HostConfig":{"NetworkMode":"none"},"NetworkSettings":{"Networks":{}}}`},
	{"null settings", `{"Id":"c10","Name":"app-10","State":{"Running":true},"Config":null,"HostConfig":null,"NetworkSettings":null}`},
	{"no state", `{"Id":"c11","Name":"/app-11"}`},
	{"in a holder's namespace", `{"Id":"c12","Name":"/tierlb","State":{"Running":true},"HostConfig":{"NetworkMode":"container:holder"},
		"NetworkSettings":{"Networks":{}}}`},
	{"host network", `{"Id":"c13","Name":"/tierlb","State":{"Running":true},"HostConfig":{"NetworkMode":"host"},
		"NetworkSettings":{"Networks":{"host":{"NetworkID":"nh"}}}}`},
	{"bad labels", `{"Id":"c14","Name":"/app-14","State":{"Running":true},"Config":{"Labels":{"tierlb.service":"app","tierlb.weight":"heavy","tierlb.port":"x"}}}`},
	{"bad created", `{"Id":"c15","Name":"/app-15","Created":"yesterday","State":{"Running":true}}`},
	{"keys in other case", `{"id":"c16","name":"/app-16","state":{"running":true,"health":{"status":"healthy"}},"config":{"labels":{"tierlb.service":"app"}}}`},
}

// TestInspectRowAsTheSDKReadsIt holds the trimmed inspect to the SDK's
// container.InspectResponse read by the same rules: the same record, the
// same health, the same facts for self-detection.
func TestInspectRowAsTheSDKReadsIt(t *testing.T) {
	real, err := os.ReadFile("testdata/inspect_running.json")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("real engine", func(t *testing.T) {
		if !sameAsSDK(t, real) {
			t.Fatal("the SDK does not read the real engine's answer")
		}
		row, _ := decodeInspect(bytes.NewReader(real), new(bytes.Buffer))
		c, ok := fromInspect(row, "tierlb")
		if !ok || c.Health != "healthy" || c.StopSignal() != "SIGQUIT" || !slices.Equal(c.Exposed(), []int{8080, 8443}) ||
			len(c.Endpoints) != 2 || c.Endpoints[0].Network() != "bridge" || c.Endpoints[0].IP.String() != "172.17.0.5" || c.labels.err != nil {
			t.Fatalf("record %+v", c)
		}
	})
	for _, tt := range inspectCases {
		t.Run(tt.name, func(t *testing.T) {
			if !sameAsSDK(t, []byte(tt.body)) {
				t.Fatal("the SDK does not read the case")
			}
		})
	}
	t.Run("fake engine", func(t *testing.T) {
		cli := containerEngine(t, 5, 2)
		res, err := cli.ContainerList(t.Context(), client.ContainerListOptions{})
		if err != nil || len(res.Items) != 5 {
			t.Fatalf("%d containers, %v", len(res.Items), err)
		}
		for _, s := range res.Items {
			body, err := newGetter(cli).GetBody(t.Context(), "/containers/"+s.ID+"/json", nil)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			_, err = b.ReadFrom(body)
			body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if !sameAsSDK(t, b.Bytes()) {
				t.Fatalf("the SDK does not read %s", b.Bytes())
			}
		}
	})
}

// TestInspectErrors: a container the engine does not know reads as gone
// (cerrdefs.IsNotFound), as it did through the SDK; other refusals name
// the container and carry the engine's message.
func TestInspectErrors(t *testing.T) {
	cli := containerEngine(t, 1, 1)
	p, err := New(Config{}, nil, newFakeSink(), Options{Client: cli})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.inspectContainer(t.Context(), "nosuchcontainer")
	if !cerrdefs.IsNotFound(err) || !strings.Contains(err.Error(), "nosuchcontainer") || !strings.Contains(err.Error(), "No such container") {
		t.Errorf("unknown container: %v, want a not-found error naming it", err)
	}
	if c, err := p.inspect(t.Context(), "nosuchcontainer"); c != nil || err != nil {
		t.Errorf("inspect of a gone container = %v, %v; want nothing", c, err)
	}
	if _, err := p.inspectContainer(t.Context(), " "); !cerrdefs.IsInvalidArgument(err) {
		t.Errorf("empty ID: %v, want an invalid-argument error", err)
	}

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/_ping":
			w.Header().Set("Api-Version", "1.41")
		case strings.HasSuffix(r.URL.Path, "/v1.41/containers/broken/json"):
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `{"message":"layer store is on fire"}`)
		case strings.HasSuffix(r.URL.Path, "/containers/cut/json"):
			fmt.Fprint(w, `{"Id":"cut","State":{"Running":`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	hc, err := client.New(client.WithHost("tcp://" + srv.Listener.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hc.Close() })
	p, err = New(Config{}, nil, newFakeSink(), Options{Client: hc})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.inspect(t.Context(), "broken")
	if err == nil || !cerrdefs.IsInternal(err) || !strings.Contains(err.Error(), "broken") || !strings.Contains(err.Error(), "layer store is on fire") {
		t.Errorf("engine failure: %v, want an internal error naming the container and the engine's message", err)
	}
	_, err = p.inspect(t.Context(), "cut")
	if err == nil || !strings.Contains(err.Error(), "inspect container cut: decode") {
		t.Errorf("cut answer: %v, want a decode error naming the container", err)
	}
}

// FuzzDecodeInspect holds the trimmed inspect to the SDK's type: whatever
// container.InspectResponse reads, inspectRow reads to the same record;
// and nothing panics.
func FuzzDecodeInspect(f *testing.F) {
	real, err := os.ReadFile("testdata/inspect_running.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(real)
	for _, tt := range inspectCases {
		f.Add([]byte(tt.body))
	}
	f.Add([]byte(`null`))
	f.Add([]byte(`{"State":{"Running":true},"Config":{"ExposedPorts":{"80":{},"1-3/tcp":{},"x/sctp":{}}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if row, err := decodeInspect(bytes.NewReader(body), new(bytes.Buffer)); err == nil {
			fromInspect(row, "tierlb")
			row.health()
		}
		sameAsSDK(t, body)
	})
}

// BenchmarkInspect decodes one inspect answer as tierlb makes a record of
// it: through the SDK's type (as ContainerInspect does, keeping the raw
// answer too), and through inspectRow.
func BenchmarkInspect(b *testing.B) {
	real, err := os.ReadFile("testdata/inspect_running.json")
	if err != nil {
		b.Fatal(err)
	}
	real = compact(b, real)
	cli := containerEngine(b, 1, 1)
	res, err := cli.ContainerList(b.Context(), client.ContainerListOptions{})
	if err != nil || len(res.Items) != 1 {
		b.Fatal(len(res.Items), err)
	}
	ins, err := cli.ContainerInspect(b.Context(), res.Items[0].ID, client.ContainerInspectOptions{})
	if err != nil {
		b.Fatal(err)
	}
	for _, in := range []struct {
		name string
		body []byte
	}{{"engine", real}, {"fake", ins.Raw}} {
		b.Run(in.name+"/sdk", func(b *testing.B) {
			b.SetBytes(int64(len(in.body)))
			b.ReportAllocs()
			for b.Loop() {
				var buf bytes.Buffer
				var r container.InspectResponse
				if err := json.NewDecoder(io.TeeReader(bytes.NewReader(in.body), &buf)).Decode(&r); err != nil {
					b.Fatal(err)
				}
				if _, ok := recordFromSDK(r, "tierlb"); !ok {
					b.Fatal("not running")
				}
			}
		})
		b.Run(in.name+"/trimmed", func(b *testing.B) {
			b.SetBytes(int64(len(in.body)))
			b.ReportAllocs()
			var buf bytes.Buffer // as inspectContainer's pool keeps it
			for b.Loop() {
				r, err := decodeInspect(bytes.NewReader(in.body), &buf)
				if err != nil {
					b.Fatal(err)
				}
				if _, ok := fromInspect(r, "tierlb"); !ok {
					b.Fatal("not running")
				}
			}
		})
	}
}

func compact(tb testing.TB, b []byte) []byte {
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		tb.Fatal(err)
	}
	return out.Bytes()
}
