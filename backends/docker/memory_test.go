package docker

import (
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/tierlb/tierlb/backends"
	"github.com/tierlb/tierlb/internal/fakeengine"
	"github.com/tierlb/tierlb/internal/testkit"
)

// keepSink keeps what it is handed, as cmd/ does.
type keepSink struct {
	mu    sync.Mutex
	specs map[string][]backends.Spec
}

func (s *keepSink) UpdateBackends(service string, specs []backends.Spec) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.specs[service] = specs
}

func (s *keepSink) DeclareServices([]LabelService) {}

// TestMemoryPerContainer guards what discovery keeps per container once
// routed: its record, its route and the specs handed to the sink (the
// backends.Set's share is TestMemoryPerBackend's). It relists a fake
// engine's 2,000 containers over 20 services, as tierlb would at start, and
// bounds the live heap that leaves behind; bytes, not time, so machine
// speed does not matter.
func TestMemoryPerContainer(t *testing.T) {
	const n, services = 2000, 20
	ctx := t.Context()
	e, host := serveFake(t, fakeengine.Options{Port: 8080})
	self, err := e.Run("tierlb", nil)
	if err != nil {
		t.Fatal(err)
	}
	sels := make([]ServiceSelector, services)
	for i := range sels {
		sels[i] = ServiceSelector{Name: fmt.Sprintf("svc%d", i)}
	}
	for i := range n {
		svc := i % services
		labels := map[string]string{"tierlb.service": fmt.Sprintf("svc%d", svc), "tierlb.port": "8080"}
		if _, err := e.Run(fmt.Sprintf("svc%d-%d", svc, i/services), labels); err != nil {
			t.Fatal(err)
		}
	}

	sink := &keepSink{specs: map[string][]backends.Spec{}}
	var allocs runtime.MemStats
	var relistErr error
	live := testkit.LiveHeap(func() any {
		p, err := New(Config{Host: host, ContainerID: self.ID}, sels, sink, Options{})
		if err != nil {
			relistErr = err
			return nil
		}
		runtime.ReadMemStats(&allocs)
		before := allocs.TotalAlloc
		relistErr = p.relist(ctx)
		runtime.ReadMemStats(&allocs)
		allocs.TotalAlloc -= before
		// The fake engine serves in this process: a second collection frees
		// the buffer its JSON encoder pooled (a sync.Pool keeps one through
		// a collection), which is not the provider's.
		runtime.GC()
		return p
	})
	if relistErr != nil {
		t.Fatal(relistErr)
	}
	routed := 0
	for _, specs := range sink.specs {
		routed += len(specs)
	}
	if routed != n {
		t.Fatalf("%d containers routed, want %d", routed, n)
	}
	per := float64(live) / n
	t.Logf("%d containers keep %d B of live heap: %.0f B per container; the relist allocated %.0f B per container (the fake engine's serving included)",
		n, live, per, float64(allocs.TotalAlloc)/n)
	if per > maxBytesPerContainer {
		t.Errorf("%.0f B of live heap per container, want at most %d", per, maxBytesPerContainer)
	}
}

// maxBytesPerContainer bounds TestMemoryPerContainer: 786 B measured: the
// record 144 (what only an inspect says is behind a nil pointer), its ID
// and name 80, its endpoint and labels 32 each (the network a shared
// handle, the label strings interned), its route 128 and address 24
// (where it is routed, not a Spec: the sink's slice, 120 per backend, is
// the one copy), and the provider's two indexes by ID and its members by
// service the rest. The record with the inspect's fields inline and
// padded made it 848; a Spec kept in the route, a time.Time and network
// names per record 1,215; the labels map per record 1,831.
const maxBytesPerContainer = 840
