package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// chainTimeout bounds one downstream call of GET /chain, so that a missing
// tier answers with an error rather than hanging the caller.
const chainTimeout = 3 * time.Second

// maxChainBody bounds what a downstream's /chain answer may add to ours.
const maxChainBody = 4 << 10

// chainClient calls the next tier for GET /chain. Every call is a new
// connection: the tiers talk through an L4 load balancer, which picks a
// replica per connection, so a kept-alive connection would pin every call
// to one replica and hide the rotation the example is there to show.
type chainClient struct {
	url  string
	once sync.Once
	hc   *http.Client
}

// call asks the next tier and returns its answer, or why there is none.
func (c *chainClient) call() (string, error) {
	c.once.Do(func() {
		c.hc = &http.Client{Timeout: chainTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
	})
	resp, err := c.hc.Get(c.url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxChainBody))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", c.url, err)
	}
	answer := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s: %s", c.url, resp.Status, answer)
	}
	return answer, nil
}

// chainAnswer is the body of GET /chain: this replica's name, then the
// path the call took below it ("web-1 -> app-2 -> db-1"), and whether it
// went all the way.
func (s *Server) chainAnswer() (status int, body string) {
	if s.chain == nil {
		return 200, s.Name + "\n"
	}
	below, err := s.chain.call()
	if err != nil {
		return 502, s.Name + " -> error: " + err.Error() + "\n"
	}
	return 200, s.Name + " -> " + below + "\n"
}

// checkChainURL wants "" (no next tier) or an http URL with a host, so a
// typo fails at start rather than on every call.
func checkChainURL(raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("--chain / $CHAIN %q: want an http URL such as http://app:8081/chain", raw)
	}
	return nil
}
