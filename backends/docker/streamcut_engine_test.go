package docker

import (
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/tierlb/tierlb/internal/testkit"
)

// sockProxy forwards a unix socket to the engine's, and can cut every open
// connection and refuse new ones: an engine restart as the provider sees it.
type sockProxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	refuse  bool
	conns   map[net.Conn]bool
	wg      sync.WaitGroup
	accepts int
}

func newSockProxy(t *testing.T, target string) *sockProxy {
	t.Helper()
	path := filepath.Join(t.TempDir(), "docker.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	p := &sockProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *sockProxy) host() string { return "unix://" + p.ln.Addr().String() }

func (p *sockProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.accepts++
		if p.refuse {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("unix", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = true, true
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(c, up) })
		p.wg.Go(func() { p.pipe(up, c) })
	}
}

func (p *sockProxy) pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// cut closes every proxied connection.
func (p *sockProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

func (p *sockProxy) setRefuse(v bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = v
}

func (p *sockProxy) acceptCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepts
}

func TestEngineEventStreamCut(t *testing.T) {
	e := newTestEnv(t)
	host := e.cli.DaemonHost()
	if !strings.HasPrefix(host, "unix://") {
		t.Skipf("engine at %s is not a unix socket; the cut proxy needs one", host)
	}
	sp := newSockProxy(t, strings.TrimPrefix(host, "unix://"))
	viaProxy, err := client.New(client.WithHost(sp.host()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { viaProxy.Close() })

	net := e.network("app")
	proxy := e.run("proxy", runOpts{nets: []string{net}})
	labels := map[string]string{e.label("service"): "app"}
	first := e.run("r1", runOpts{nets: []string{net}, labels: labels})
	late := e.run("r2", runOpts{nets: []string{net}, labels: labels, noStart: true})
	sink := newFakeSink()
	p := e.provider(Config{ContainerID: proxy, ResyncInterval: time.Hour}, []ServiceSelector{{Name: "app"}}, sink, viaProxy)
	if s := sink.get("app"); len(s) != 1 || s[0].Container != first {
		t.Fatalf("specs = %+v", s)
	}

	// The engine "goes away": the stream breaks, reconnects are refused,
	// and meanwhile a replica starts (its start event is lost to us).
	sp.setRefuse(true)
	sp.cut()
	e.start(late)
	before := sp.acceptCount()
	testkit.Eventually(t, 5*time.Second, "refused reconnects", func() bool { return sp.acceptCount() >= before+2 })
	if ok, _ := p.Ready(); !ok {
		t.Fatal("ready must stay true once synced")
	}
	if s := sink.get("app"); len(s) != 1 {
		t.Fatalf("last known backends not kept during the outage: %+v", s)
	}

	// The engine is back: the provider resubscribes, relists, finds r2.
	sp.setRefuse(false)
	testkit.Eventually(t, 5*time.Second, "r2 after resync", func() bool { return len(sink.get("app")) == 2 })

	// And the new stream works: stopping r1 drains it.
	if _, err := e.cli.ContainerKill(t.Context(), first, client.ContainerKillOptions{Signal: "SIGKILL"}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 2*time.Second, "r1 removed via the new stream", func() bool {
		s := sink.get("app")
		return len(s) == 1 && s[0].Container == late
	})
}
