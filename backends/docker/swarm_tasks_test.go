package docker

import (
	"bytes"
	"fmt"
	"io"
	"net/http/httptrace"
	"reflect"
	"slices"
	"strings"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"
	"github.com/tierlb/tierlb/internal/fakeengine"
)

// swarmEngine serves a fake Swarm manager with tasks tasks over services
// services on a unix socket, and returns an SDK client to it.
func swarmEngine(tb testing.TB, tasks, services int) (*fakeengine.Engine, *client.Client) {
	tb.Helper()
	e, host := serveFake(tb, fakeengine.Options{Port: 8080, Swarm: true, Nodes: 20})
	for i := range services {
		n := tasks / services
		if i < tasks%services {
			n++
		}
		if _, _, err := e.CreateService(fmt.Sprintf("svc%d", i), n, map[string]string{"tierlb.service": fmt.Sprintf("svc%d", i)}); err != nil {
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
	return e, cli
}

// taskListJSON is the engine's answer to GET /tasks, as tierlb reads it
// through a client that wraps the SDK's, as cmd/tierlb's does.
func taskListJSON(tb testing.TB, cli *client.Client, f client.Filters) []byte {
	tb.Helper()
	body, err := newGetter(struct{ client.APIClient }{cli}).GetBody(tb.Context(), "/tasks", f)
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

func rowsOf(t *testing.T, body []byte) []taskRow {
	t.Helper()
	var rows []taskRow
	if err := decodeList(bytes.NewReader(body), "task", func(r *taskRow) { rows = append(rows, *r) }); err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestTaskRowsAsTheSDKReadsThem holds the trimmed decoding, over the HTTP
// request tierlb makes itself, to what the SDK's TaskList reads of the
// same tasks.
func TestTaskRowsAsTheSDKReadsThem(t *testing.T) {
	_, cli := swarmEngine(t, 30, 3)
	f := make(client.Filters).Add("desired-state", "running")
	res, err := cli.TaskList(t.Context(), client.TaskListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	rows := rowsOf(t, taskListJSON(t, cli, f))
	if len(rows) != 30 || len(res.Items) != 30 {
		t.Fatalf("%d rows and %d SDK tasks, want 30", len(rows), len(res.Items))
	}
	for i, tk := range res.Items {
		want, err := rowOf(tk)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(rows[i], *want) {
			t.Errorf("task %d: row %+v, want %+v", i, rows[i], *want)
		}
		if rows[i].Version.Index == 0 || len(rows[i].NetworksAttachments) == 0 || !rows[i].NetworksAttachments[0].Addresses[0].IsValid() {
			t.Errorf("task %d: row %+v lacks a version or an address", i, rows[i])
		}
	}
}

// TestTaskListErrorAsTheSDKs: a service gone makes the list a 404 that
// errdefs knows, naming the endpoint and the engine's message.
func TestTaskListErrorAsTheSDKs(t *testing.T) {
	_, cli := swarmEngine(t, 2, 1)
	_, err := newGetter(cli).GetBody(t.Context(), "/tasks", make(client.Filters).Add("service", "gone"))
	if !cerrdefs.IsNotFound(err) {
		t.Fatalf("list naming a gone service: %v, want a not-found error", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "/tasks") || !strings.Contains(msg, "404") || !strings.Contains(msg, "gone") {
		t.Errorf("error %q should name the endpoint, the status and the engine's message", msg)
	}
}

func TestDecodeTasksBadInput(t *testing.T) {
	tests := []struct{ name, body, want string }{
		{"object", `{"ID":"x"}`, "want an array"},
		{"bad state type", `[{"ID":"x","Status":{"State":1}}]`, "task 0"},
		{"bad address", `[{"ID":"x","NetworksAttachments":[{"Addresses":["10.0.0.1"]}]}]`, "task 0"},
		{"cut", `[{"ID":"x"},`, "decode task list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := decodeList(strings.NewReader(tt.body), "task", func(*taskRow) {})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one with %q", err, tt.want)
			}
		})
	}
	if err := decodeList(strings.NewReader("null"), "task", func(*taskRow) { t.Error("a task in null") }); err != nil {
		t.Errorf("null: %v", err)
	}
}

// FuzzDecodeTasks holds the streaming decoder to encoding/json's reading
// of the whole array.
func FuzzDecodeTasks(f *testing.F) {
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[{"ID":"t","Version":{"Index":3},"Slot":2,"Status":{"State":"running","ContainerStatus":{"ContainerID":"c"}},` +
		`"NetworksAttachments":[{"Network":{"ID":"n","Spec":{"Name":"net","Ingress":false}},"Addresses":["10.0.0.2/24","fd00::2/64"]}]}]`))
	f.Add([]byte(`[{"ID":"t","Spec":{"ContainerSpec":{"Healthcheck":{"Test":["NONE"]}}}}, {}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		decodesAsJSON(t, body, "task", func(*taskRow) {})
	})
}

// BenchmarkTaskList decodes one list of 10,000 tasks over 100 services as
// the fake engine serves it: into swarm.Task as the SDK's TaskList does,
// and into taskRow.
func BenchmarkTaskList(b *testing.B) {
	_, cli := swarmEngine(b, 10000, 100)
	body := taskListJSON(b, cli, make(client.Filters).Add("desired-state", "running"))
	b.Logf("%d bytes, %d per task", len(body), len(body)/10000)
	benchListDecodes[swarm.Task, taskRow](b, body, "task", 10000, "sdk", "trimmed")
}

// TestTaskListsReuseTheConnection: polls share one connection (over TLS,
// no handshake per poll).
func TestTaskListsReuseTheConnection(t *testing.T) {
	_, cli := swarmEngine(t, 20, 2)
	g := newHTTPGetter(struct{ client.APIClient }{cli})
	g.negotiated.Store(true) // swarmEngine did, and its ping is not on g's connections
	p := &Provider{raw: g}
	var reused []bool
	ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { reused = append(reused, i.Reused) },
	})
	for range 3 {
		n := 0
		if err := p.taskList(ctx, nil, func(*taskRow) { n++ }); err != nil || n != 20 {
			t.Fatalf("%d tasks, %v; want 20", n, err)
		}
	}
	if !slices.Equal(reused, []bool{false, true, true}) {
		t.Errorf("connections reused: %v, want [false true true]", reused)
	}
}
