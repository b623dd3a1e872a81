package scale

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// check confirms the log's word with the admin API (every backend listed,
// up for health none) and with real connections through a sample of
// services, each of which must reach a replica of its own service.
func (h *harness) check(proc *tierlb) error {
	proc.mu.Lock()
	admin := proc.admin
	listen := make(map[string]string, len(proc.listen))
	for k, v := range proc.listen {
		listen[k] = v
	}
	proc.mu.Unlock()

	cli := &http.Client{Timeout: 30 * time.Second}
	res, err := cli.Get("http://" + admin + "/api/v1/services")
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	defer res.Body.Close()
	var services []struct {
		Name     string `json:"name"`
		Backends []struct {
			State string `json:"state"`
		} `json:"backends"`
	}
	if err := json.NewDecoder(res.Body).Decode(&services); err != nil {
		return fmt.Errorf("admin API /api/v1/services: %w", err)
	}
	total, up := 0, 0
	for _, s := range services {
		total += len(s.Backends)
		for _, b := range s.Backends {
			if b.State == "up" {
				up++
			}
		}
	}
	if total != h.p.Containers || (h.p.Health == "none" && up != total) {
		return fmt.Errorf("admin API lists %d backends, %d up; want %d", total, up, h.p.Containers)
	}

	step := max(1, h.p.Services/max(1, h.p.Samples))
	for i := 0; i < h.p.Services && h.p.Samples > 0 && h.p.Containers >= h.p.Services; i += step {
		svc := fmt.Sprintf("svc%d", i)
		for range 3 {
			got, err := greeting(listen[svc])
			if err != nil {
				return fmt.Errorf("connection through %s (%s): %w", svc, listen[svc], err)
			}
			host, _, _ := net.SplitHostPort(got)
			if h.byIP[host] != svc {
				return fmt.Errorf("connection through %s reached %s, a replica of %q", svc, got, h.byIP[host])
			}
		}
	}
	return nil
}

// heapInuse reads go_memstats_heap_inuse_bytes from tierlb's /metrics.
func (h *harness) heapInuse(proc *tierlb) (int64, error) {
	proc.mu.Lock()
	admin := proc.admin
	proc.mu.Unlock()
	cli := &http.Client{Timeout: 30 * time.Second}
	res, err := cli.Get("http://" + admin + "/metrics")
	if err != nil {
		return 0, fmt.Errorf("metrics: %w", err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_inuse_bytes "); ok {
			_, _ = io.Copy(io.Discard, res.Body) // read to the end: tierlb warns of a scrape cut short
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, fmt.Errorf("metrics: go_memstats_heap_inuse_bytes %q", v)
			}
			return int64(f), nil
		}
	}
	return 0, fmt.Errorf("metrics: no go_memstats_heap_inuse_bytes (%v)", sc.Err())
}

// greeting dials addr and returns the first line the replica sends.
func greeting(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}
