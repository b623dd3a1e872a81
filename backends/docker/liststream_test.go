package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/tierlb/tierlb/internal/fakeengine"
)

// serveFake serves a fake engine on a unix socket until the test ends and
// returns it with its DOCKER_HOST.
func serveFake(tb testing.TB, opts fakeengine.Options) (*fakeengine.Engine, string) {
	tb.Helper()
	e := fakeengine.New(opts)
	host, err := e.Listen(filepath.Join(tb.TempDir(), "docker.sock"))
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Serve(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Error(err)
		}
	})
	return e, host
}

// containerEngine serves a fake engine with n running containers over
// services services on a unix socket, and returns an SDK client to it.
func containerEngine(tb testing.TB, n, services int) *client.Client {
	tb.Helper()
	e, host := serveFake(tb, fakeengine.Options{Port: 8080})
	for i := range n {
		svc := fmt.Sprintf("svc%d", i%services)
		if _, err := e.Run(fmt.Sprintf("%s-%d", svc, i/services), map[string]string{"tierlb.service": svc}); err != nil {
			tb.Fatal(err)
		}
	}
	cli, err := client.New(client.WithHost(host))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cli.Close() })
	if _, err := cli.Ping(tb.Context(), client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		tb.Fatal(err)
	}
	return cli
}

// containerListJSON is the engine's answer to GET /containers/json, as
// tierlb reads it through a client that wraps the SDK's, as cmd/tierlb's
// does.
func containerListJSON(tb testing.TB, cli *client.Client, f client.Filters) []byte {
	tb.Helper()
	body, err := newGetter(struct{ client.APIClient }{cli}).GetBody(tb.Context(), "/containers/json", f)
	if err != nil {
		tb.Fatal(err)
	}
	defer body.Close()
	b, err := io.ReadAll(body)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestContainerRowsAsTheSDKReadsThem holds the trimmed decoding, over the
// HTTP request tierlb makes itself, to what the SDK's ContainerList reads
// of the same containers, filter included.
func TestContainerRowsAsTheSDKReadsThem(t *testing.T) {
	cli := containerEngine(t, 30, 3)
	f := make(client.Filters).Add("label", "tierlb.service=svc1")
	res, err := cli.ContainerList(t.Context(), client.ContainerListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	var rows []containerRow
	if err := decodeList(bytes.NewReader(containerListJSON(t, cli, f)), "container", func(r *containerRow) { rows = append(rows, *r) }); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 10 || len(res.Items) != 10 {
		t.Fatalf("%d rows and %d SDK containers, want 10", len(rows), len(res.Items))
	}
	for i, s := range res.Items {
		r := rows[i]
		if r.ID != s.ID || !slices.Equal(r.Names, s.Names) || r.Created != s.Created || !maps.Equal(r.Labels, s.Labels) ||
			r.State != s.State || r.Status != s.Status || (r.Health == nil) != (s.Health == nil) ||
			(r.Health != nil && r.Health.Status != s.Health.Status) {
			t.Errorf("container %d: row %+v, want %+v", i, r, s)
		}
		if r.NetworkSettings == nil || len(r.NetworkSettings.Networks) != len(s.NetworkSettings.Networks) || len(s.NetworkSettings.Networks) == 0 {
			t.Fatalf("container %d: row networks %+v, want %+v", i, r.NetworkSettings, s.NetworkSettings)
		}
		for name, ep := range s.NetworkSettings.Networks {
			got := r.NetworkSettings.Networks[name]
			if got == nil || got.NetworkID != ep.NetworkID || got.IPAddress != ep.IPAddress || got.GlobalIPv6Address != ep.GlobalIPv6Address {
				t.Errorf("container %d network %s: row %+v, want %+v", i, name, got, ep)
			}
		}
		c, ok := fromRow(&r, "tierlb")
		if !ok || c.ID != s.ID || "/"+c.Name != s.Names[0] || len(c.Endpoints) != 1 || !c.Endpoints[0].IP.IsValid() {
			t.Errorf("container %d: record %+v from %+v", i, c, s)
		}
	}
}

func TestDecodeContainersBadInput(t *testing.T) {
	tests := []struct{ name, body, want string }{
		{"object", `{"Id":"x"}`, "want an array of containers"},
		{"bad labels type", `[{"Id":"a"},{"Id":"x","Labels":["a"]}]`, "container 1: json: cannot unmarshal array into Go struct field containerRow.Labels"},
		{"bad created", `[{"Id":"x","Created":"yesterday"}]`, "containerRow.Created"},
		{"bad address", `[{"Id":"x","NetworkSettings":{"Networks":{"n":{"IPAddress":"10.0.0"}}}}]`, "container 0"},
		{"cut", `[{"Id":"x"},`, "decode container list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := decodeList(strings.NewReader(tt.body), "container", func(*containerRow) {})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one with %q", err, tt.want)
			}
		})
	}
}

// TestContainerListErrorNamesTheEngine: an engine's refusal is reported
// with the endpoint, the status and the engine's message.
func TestContainerListErrorNamesTheEngine(t *testing.T) {
	cli := containerEngine(t, 1, 1)
	_, err := newGetter(cli).GetBody(t.Context(), "/containers/json", client.Filters{"label": {"x": true}, "bad filter": {"y": true}})
	if err == nil {
		t.Fatal("a list with an unknown filter succeeded")
	}
	if msg := err.Error(); !strings.Contains(msg, "/containers/json") || !strings.Contains(msg, "400") || !strings.Contains(msg, "bad filter") {
		t.Errorf("error %q should name the endpoint, the status and the engine's message", msg)
	}
}

// FuzzDecodeContainers holds the streaming decoder to encoding/json's
// reading of the whole array, and every row it accepts to a record
// without a panic.
func FuzzDecodeContainers(f *testing.F) {
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[{"Id":"c1","Names":["/app-1","/other/alias"],"Created":1700000000,"Labels":{"tierlb.service":"app","tierlb.port":"80"},` +
		`"State":"running","Status":"Up 2 minutes (healthy)","NetworkSettings":{"Networks":{"app":{"NetworkID":"n1","IPAddress":"10.0.0.2","GlobalIPv6Address":""}}}}]`))
	f.Add([]byte(`[{"Id":"c2","State":"paused","Health":{"Status":"unhealthy"},"NetworkSettings":{"Networks":{"v6":{"GlobalIPv6Address":"fd00::2"},"gone":null}}}, {}]`))
	f.Add([]byte(`[{"Id":"c3","State":"running","Labels":{"tierlb.weight":"x","tierlb.` + strings.Repeat("k", 4096) + `":"` + strings.Repeat("v", 1<<16) + `"}}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		decodesAsJSON(t, body, "container", func(r *containerRow) { fromRow(r, "tierlb") })
	})
}

// decodesAsJSON decodes body, a JSON array of kind, a row at a time (each
// row given to each first) and fails unless it reads what encoding/json
// reads of the whole array. On input encoding/json refuses the stream may
// stop earlier or later; it must only not panic.
func decodesAsJSON[R any](t *testing.T, body []byte, kind string, each func(*R)) {
	t.Helper()
	var got []R
	err := decodeList(bytes.NewReader(body), kind, func(r *R) {
		each(r)
		got = append(got, *r)
	})
	var want []R
	if json.Unmarshal(body, &want) != nil {
		return
	}
	if err != nil {
		t.Fatalf("decodeList: %v; encoding/json reads it", err)
	}
	if len(got) != len(want) || (len(got) > 0 && !reflect.DeepEqual(got, want)) {
		t.Fatalf("rows %+v, want %+v", got, want)
	}
}

// BenchmarkContainerList decodes one list of 10,000 containers over 100
// services as the fake engine serves it: into container.Summary as the
// SDK's ContainerList does, and a row at a time into containerRow, each
// made a record as the relist does.
func BenchmarkContainerList(b *testing.B) {
	cli := containerEngine(b, 10000, 100)
	body := containerListJSON(b, cli, nil)
	b.Logf("%d bytes, %d per container", len(body), len(body)/10000)
	benchListDecodes[container.Summary, containerRow](b, body, "container", 10000, "sdk", "streamed")
	b.Run("streamed+records", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			n := 0
			if err := decodeList(bytes.NewReader(body), "container", func(r *containerRow) {
				if _, ok := fromRow(r, "tierlb"); ok {
					n++
				}
			}); err != nil || n != 10000 {
				b.Fatal(n, err)
			}
		}
	})
}

// benchListDecodes runs two sub-benchmarks over body, a JSON array of n
// elements of kind: sdkName decodes it whole into []S, as the SDK's list
// call does, and rowName a row at a time into R, as tierlb does.
func benchListDecodes[S, R any](b *testing.B, body []byte, kind string, n int, sdkName, rowName string) {
	b.Run(sdkName, func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			var list []S
			if err := json.NewDecoder(bytes.NewReader(body)).Decode(&list); err != nil || len(list) != n {
				b.Fatal(len(list), err)
			}
		}
	})
	b.Run(rowName, func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			got := 0
			if err := decodeList(bytes.NewReader(body), kind, func(*R) { got++ }); err != nil || got != n {
				b.Fatal(got, err)
			}
		}
	})
}
