package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/containerd/errdefs/pkg/errhttp"
	"github.com/moby/moby/client"
)

// getter answers the engine's GET endpoints undecoded: the JSON body of
// GET path with filters (none when f is empty), or the engine's error.
type getter interface {
	GetBody(ctx context.Context, path string, f client.Filters) (io.ReadCloser, error)
}

// newGetter reads by HTTP (see httpGetter), unless the client answers
// itself (an engine in memory).
func newGetter(cli client.APIClient) getter {
	if l, ok := cli.(getter); ok {
		return l
	}
	return newHTTPGetter(cli)
}

// streamList reads the list at path one element at a time (see
// decodeList), so that a list of 10,000 containers or tasks is never held
// whole: the SDK's ContainerList and TaskList decode every field of every
// element into one slice, megabytes that set the process's peak.
func streamList[T any](ctx context.Context, l getter, path string, f client.Filters, what string, visit func(*T)) error {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	body, err := l.GetBody(ctx, path, f)
	if err != nil {
		return err
	}
	defer body.Close()
	if err := decodeList(body, what, visit); err != nil {
		return err
	}
	// Read to the end, should the chunked body's last chunk come after
	// the array's end: a body closed unread closes its connection, and
	// over TLS a list would cost a handshake.
	_, err = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	return err
}

// decodeList reads a JSON array one element at a time, each into a fresh
// T handed to visit, so that what visit does not keep of an element is
// garbage at once. Errors name the element by its index.
func decodeList[T any](r io.Reader, what string, visit func(*T)) error {
	dec := json.NewDecoder(r)
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("decode %s list: %w", what, err)
	}
	if tok == nil { // null: none
		return nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return fmt.Errorf("decode %s list: got %v, want an array of %ss", what, tok, what)
	}
	for i := 0; dec.More(); i++ {
		var t T
		if err := dec.Decode(&t); err != nil {
			return fmt.Errorf("decode %s list: %s %d: %w", what, what, i, err)
		}
		visit(&t)
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("decode %s list: %w", what, err)
	}
	return nil
}

// httpGetter issues lists and inspects itself over the SDK client's
// connection (its Dialer: unix socket, TCP, TLS, or an SSH helper's
// dialer) and with its negotiated API version, because the SDK decodes
// every field of every element, and of every inspected container its
// config, host config, mounts and storage; everything else goes through
// the SDK.
type httpGetter struct {
	cli  client.APIClient
	hc   *http.Client
	host string // the Host header, as the SDK sends it
	// negotiated is set once the client has negotiated its API version,
	// which the SDK does on its first request: an inspect or a list may
	// come before any.
	negotiated atomic.Bool
}

func newHTTPGetter(cli client.APIClient) *httpGetter {
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
	return &httpGetter{cli: cli, hc: &http.Client{Transport: tr}, host: host}
}

func (h *httpGetter) GetBody(ctx context.Context, path string, f client.Filters) (io.ReadCloser, error) {
	q := url.Values{}
	if len(f) > 0 {
		b, err := json.Marshal(f)
		if err != nil {
			return nil, fmt.Errorf("GET %s: filters: %w", path, err)
		}
		q.Set("filters", string(b))
	}
	if !h.negotiated.Load() {
		if _, err := h.cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
			return nil, fmt.Errorf("GET %s: negotiate the API version with %s: %w", path, h.cli.DaemonHost(), err)
		}
		h.negotiated.Store(true)
	}
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
