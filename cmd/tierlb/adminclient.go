package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// defaultAdminURL is where status and explain look without --admin or
// TIERLB_ADMIN_LISTEN: the default admin.listen.
const defaultAdminURL = "http://127.0.0.1:9090"

// maxAdminBody bounds what the CLI reads from the admin API: far above any
// real services list, far below what would hurt.
const maxAdminBody = 64 << 20

// adminClient reads the admin API at base, a URL from resolveAdminURL.
type adminClient struct {
	base string
	http *http.Client
}

// get GETs path and returns the body of a 200 answer. Its errors are
// sentences for the user: what failed, at which address, and what the API
// said.
func (a adminClient) get(path string) ([]byte, error) {
	resp, err := a.http.Get(a.base + path)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the admin API at %s: %w; is tierlb running with admin.listen set?",
			a.base, unwrapURLError(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAdminBody))
	if err != nil {
		return nil, fmt.Errorf("read %s%s: %w", a.base, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(body))
		var apiErr struct{ Error string }
		if json.Unmarshal(body, &apiErr) == nil && apiErr.Error != "" {
			msg = apiErr.Error
		}
		return nil, fmt.Errorf("the admin API at %s answered %s for %s: %s", a.base, resp.Status, path, msg)
	}
	return body, nil
}

// unwrapURLError drops net/http's `Get "URL":` prefix, which repeats the URL
// the message already names.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// resolveAdminURL turns --admin (a URL, or an admin.listen value such as
// "0.0.0.0:9090") into the base URL to query. A wildcard listen address is
// reached on loopback.
func resolveAdminURL(s string) (string, error) {
	raw := s
	if !strings.Contains(s, "://") {
		raw = "http://" + s
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("invalid admin URL %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("invalid admin URL %q: scheme must be http or https", s)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("invalid admin URL %q: want http://HOST:PORT[/PATH]", s)
	}
	host, port := u.Hostname(), u.Port()
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	if port != "" {
		u.Host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		u.Host = "[" + host + "]"
	} else {
		u.Host = host
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u.String(), nil
}
