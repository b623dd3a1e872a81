package docker

import (
	"testing"
	"time"

	"github.com/tierlb/tierlb/internal/testkit"
)

// TestRelistFromTheList: the containers a list describes well enough are
// routed without an inspect each, and a resync that finds nothing new
// inspects none; a stopping one is inspected and stays drained while it
// runs the same start.
func TestRelistFromTheList(t *testing.T) {
	f := newFakeClient()
	f.set(proxyCtr(map[string]string{"app": "10.2.0.100"}).inspect())
	for _, n := range []string{"1", "2", "3"} {
		f.set(appCtr(n, map[string]string{"app": "10.2.0." + n}).inspect())
	}
	sink := newFakeSink()
	p := startProvider(t, Config{ContainerID: "proxyid"}, []ServiceSelector{{Name: "app"}}, f, sink)
	want := "app-1=10.2.0.1:8080,app-2=10.2.0.2:8080,app-3=10.2.0.3:8080"
	testkit.Eventually(t, 2*time.Second, "first sync", func() bool { return specSummary(sink) == want })
	if _, inspects, _ := f.counts(); inspects != 1 {
		t.Fatalf("first sync cost %d inspects, want 1 (the proxy's own container)", inspects)
	}

	kill := ctrEvent("kill", "id2", map[string]string{"signal": "15"})
	kill.TimeNano = time.Now().UnixNano()
	f.send(t, kill)
	draining := "app-1=10.2.0.1:8080,app-2=10.2.0.2:8080(container stopping),app-3=10.2.0.3:8080"
	testkit.Eventually(t, time.Second, "app-2 draining", func() bool { return specSummary(sink) == draining })

	lists, inspects, _ := f.counts()
	p.SetServices([]ServiceSelector{{Name: "app"}}) // a relist
	testkit.Eventually(t, time.Second, "relist", func() bool { l, _, _ := f.counts(); return l > lists })
	testkit.Eventually(t, time.Second, "app-2 still draining", func() bool {
		_, i, _ := f.counts()
		return i == inspects+2 && specSummary(sink) == draining
	})
	if _, i, _ := f.counts(); i != inspects+2 {
		t.Fatalf("relist cost %d inspects, want 2 (own container, the stopping one)", i-inspects)
	}
}

// TestStopSignalOfAListedContainer: a container known from the list gets a
// kill with a signal that only its STOPSIGNAL makes a stop: one inspect
// tells, and the replica drains; a reload signal leaves it in rotation.
func TestStopSignalOfAListedContainer(t *testing.T) {
	f := newFakeClient()
	f.set(proxyCtr(map[string]string{"app": "10.2.0.100"}).inspect())
	winch := appCtr("1", map[string]string{"app": "10.2.0.1"}).inspect()
	winch.Config.StopSignal = "SIGWINCH" // as the httpd image
	f.set(winch)
	f.set(appCtr("2", map[string]string{"app": "10.2.0.2"}).inspect())
	sink := newFakeSink()
	startProvider(t, Config{ContainerID: "proxyid"}, []ServiceSelector{{Name: "app"}}, f, sink)
	testkit.Eventually(t, 2*time.Second, "first sync", func() bool {
		return specSummary(sink) == "app-1=10.2.0.1:8080,app-2=10.2.0.2:8080"
	})
	f.send(t, ctrEvent("kill", "id2", map[string]string{"signal": "1"}))  // SIGHUP: a reload
	f.send(t, ctrEvent("kill", "id1", map[string]string{"signal": "28"})) // SIGWINCH: its stop
	testkit.Eventually(t, time.Second, "app-1 draining", func() bool {
		return specSummary(sink) == "app-1=10.2.0.1:8080(container stopping),app-2=10.2.0.2:8080"
	})
}
