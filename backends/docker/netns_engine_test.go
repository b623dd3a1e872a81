package docker

import (
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/tierlb/tierlb/internal/testkit"
)

// TestEngineHolderNetworkNamespace: tierlb in a container that joins a
// holder's network namespace (the hand-over pattern) routes on the
// holder's networks, whichever container ID it finds for itself, and
// follows the holder joining another network.
func TestEngineHolderNetworkNamespace(t *testing.T) {
	e := newTestEnv(t)
	front := e.network("front")
	back := e.network("back")
	holder := e.run("holder", runOpts{nets: []string{front}})
	proxy := e.run("proxy", runOpts{netMode: "container:" + holder})
	e.run("app", runOpts{nets: []string{back}, labels: map[string]string{e.label("service"): "app"}})

	sink := newFakeSink()
	p := e.provider(Config{ContainerID: proxy}, []ServiceSelector{{Name: "app"}}, sink, nil)
	if got := sink.get("app"); len(got) != 0 {
		t.Fatalf("routed %+v with no network shared", got)
	}
	if _, err := e.cli.NetworkConnect(t.Context(), back, client.NetworkConnectOptions{Container: holder}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "app routed on the holder's new network", func() bool {
		got := sink.get("app")
		return len(got) == 1 && got[0].Network == back && strings.HasPrefix(got[0].Address, "172.31.")
	})
	for _, x := range p.Explain() {
		if !x.Routed {
			t.Fatalf("explain: %+v", x)
		}
	}
}
