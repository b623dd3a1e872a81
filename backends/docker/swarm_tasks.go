package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/containerd/errdefs/pkg/errhttp"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"
)

// taskRow is the part of a Swarm task tierlb reads. A task's JSON is
// mostly its spec (the whole container spec, resources, placement, log
// driver), none of which tierlb needs: decoding into this instead of
// swarm.Task is what makes a poll of 10,000 tasks cheap.
type taskRow struct {
	ID           string
	Version      swarm.Version
	CreatedAt    time.Time
	ServiceID    string
	Slot         int
	NodeID       string
	Spec         taskRowSpec
	Status       taskRowStatus
	DesiredState swarm.TaskState
	// NetworksAttachments keeps the engine's spelling.
	NetworksAttachments []taskRowAttachment
}

type taskRowSpec struct {
	ContainerSpec *struct {
		Healthcheck *struct{ Test []string }
	}
}

type taskRowStatus struct {
	State           swarm.TaskState
	Err             string
	ContainerStatus *struct{ ContainerID string }
}

type taskRowAttachment struct {
	Network struct {
		ID   string
		Spec struct {
			Name    string
			Ingress bool
		}
	}
	Addresses []netip.Prefix
}

// decodeTasks reads a task list (a JSON array) one task at a time, so
// that a list of 16 MB is never held whole, and hands each to visit.
func decodeTasks(r io.Reader, visit func(*taskRow)) error {
	dec := json.NewDecoder(r)
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("decode task list: %w", err)
	}
	if tok == nil { // null: no tasks
		return nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return fmt.Errorf("decode task list: got %v, want an array of tasks", tok)
	}
	for i := 0; dec.More(); i++ {
		var t taskRow
		if err := dec.Decode(&t); err != nil {
			return fmt.Errorf("decode task list: task %d: %w", i, err)
		}
		visit(&t)
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("decode task list: %w", err)
	}
	return nil
}

// taskBody answers a task list undecoded: the engine's JSON array.
type taskBody interface {
	TaskListBody(ctx context.Context, f client.Filters) (io.ReadCloser, error)
}

// newTaskBody reads task lists by HTTP (see httpTasks), unless the
// client answers them itself (an engine in memory).
func newTaskBody(cli client.APIClient) taskBody {
	if tb, ok := cli.(taskBody); ok {
		return tb
	}
	return newHTTPTasks(cli)
}

// httpTasks issues GET /tasks itself over the SDK client's connection (its
// Dialer: unix socket, TCP, TLS, or an SSH helper's dialer) and with its
// negotiated API version, because the SDK decodes every field of every
// task; everything else goes through the SDK.
type httpTasks struct {
	cli  client.APIClient
	hc   *http.Client
	host string // the Host header, as the SDK sends it
}

func newHTTPTasks(cli client.APIClient) *httpTasks {
	dial := cli.Dialer()
	host := client.DummyHost
	if u, err := client.ParseHostURL(cli.DaemonHost()); err == nil && u.Scheme != "unix" && u.Scheme != "npipe" {
		host = u.Host
	}
	tr := &http.Transport{
		DialContext:     func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) },
		MaxIdleConns:    2,
		IdleConnTimeout: 30 * time.Second,
	}
	return &httpTasks{cli: cli, hc: &http.Client{Transport: tr}, host: host}
}

func (h *httpTasks) TaskListBody(ctx context.Context, f client.Filters) (io.ReadCloser, error) {
	q := url.Values{}
	if len(f) > 0 {
		b, err := json.Marshal(f)
		if err != nil {
			return nil, fmt.Errorf("task list filters: %w", err)
		}
		q.Set("filters", string(b))
	}
	path := "/tasks"
	if v := h.cli.ClientVersion(); v != "" {
		path = "/v" + strings.TrimPrefix(v, "v") + path
	}
	u := url.URL{Scheme: "http", Host: h.host, Path: path, RawQuery: q.Encode()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	req.Host = h.host
	resp, err := h.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s at %s: %w", path, h.cli.DaemonHost(), err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, responseError(path, resp)
	}
	return resp.Body, nil
}

// responseError is an engine's error answer as the SDK reports it: its
// message, and a class errdefs knows (a 404 is IsNotFound).
func responseError(path string, resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var m struct{ Message string }
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &m) == nil && m.Message != "" {
		msg = m.Message
	}
	err := fmt.Errorf("GET %s: %s: %s", path, resp.Status, msg)
	if base := errhttp.ToNative(resp.StatusCode); base != nil {
		return classed{err, base}
	}
	return err
}

// classed is an error that also is a class of errdefs.
type classed struct{ err, class error }

func (c classed) Error() string   { return c.err.Error() }
func (c classed) Unwrap() []error { return []error{c.err, c.class} }

// rowOf trims a task the SDK decoded whole (an inspect's).
func rowOf(t swarm.Task) (*taskRow, error) {
	b, err := json.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("encode task: %w", err)
	}
	var r taskRow
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode task: %w", err)
	}
	return &r, nil
}
