package health

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/tierlb/tierlb/backends"
	"github.com/tierlb/tierlb/internal/testkit"
)

// fakeDocker answers ContainerHealth from a map of container ID to status;
// a missing ID is an engine error.
type fakeDocker map[string]string

var errNoSuchContainer = errors.New("no such container")

func (f fakeDocker) ContainerHealth(_ context.Context, id string) (string, error) {
	s, ok := f[id]
	if !ok {
		return "", errNoSuchContainer
	}
	return s, nil
}

// switchableDocker is a fakeDocker whose answers change during a test.
type switchableDocker struct {
	mu     sync.Mutex
	status map[string]string
	calls  int
}

func (s *switchableDocker) set(id, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status[id] = status
}

func (s *switchableDocker) ContainerHealth(ctx context.Context, id string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	return fakeDocker(s.status).ContainerHealth(ctx, id)
}

func TestDockerChecker(t *testing.T) {
	d := DockerChecker{Health: fakeDocker{
		"c-healthy": "healthy", "c-starting": "starting", "c-unhealthy": "unhealthy",
		"c-none": "none", "c-empty": "", "c-odd": "sleepy",
	}}
	tests := []struct {
		name, container string
		want            error // nil: passes
	}{
		{"healthy", "c-healthy", nil},
		{"starting", "c-starting", ErrContainerStarting},
		{"unhealthy", "c-unhealthy", ErrContainerUnhealthy},
		{"no healthcheck", "c-none", ErrNoHealthcheck},
		{"empty status", "c-empty", ErrNoHealthcheck},
		{"engine error", "c-gone", errNoSuchContainer},
		{"static backend", "", ErrNoContainer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := backends.Spec{ID: "web-1", Address: "10.0.0.5:80", Container: tt.container}
			err := checkSpec(context.Background(), d, spec)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("check = %v, want %v", err, tt.want)
			}
		})
	}
	if err := d.Check(context.Background(), "c-odd"); err == nil {
		t.Fatal("unknown status passed")
	}
}

// fakeInspector embeds the client interface and overrides only inspect.
type fakeInspector struct {
	ContainerInspector
	state *container.State
	err   error
}

func (f fakeInspector) ContainerInspect(context.Context, string, client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	return client.ContainerInspectResult{Container: container.InspectResponse{State: f.state}}, f.err
}

func TestDockerInspect(t *testing.T) {
	boom := errors.New("engine down")
	tests := []struct {
		name    string
		f       fakeInspector
		want    string
		wantErr error
	}{
		{"healthy", fakeInspector{state: &container.State{Running: true, Health: &container.Health{Status: container.Healthy}}}, "healthy", nil},
		{"no healthcheck", fakeInspector{state: &container.State{Running: true}}, "none", nil},
		{"exited", fakeInspector{state: &container.State{Status: "exited", Health: &container.Health{Status: container.Healthy}}}, "", errAny},
		{"engine error", fakeInspector{err: boom}, "", boom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DockerInspect{Client: tt.f}.ContainerHealth(context.Background(), "abc")
			switch {
			case tt.wantErr == errAny && err != nil:
			case !errors.Is(err, tt.wantErr):
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("status = %q, want %q", got, tt.want)
			}
		})
	}
}

var errAny = errors.New("any error")

// TestMonitorDocker: a container is held out until Docker calls it healthy,
// then goes down after fall unhealthy answers.
func TestMonitorDocker(t *testing.T) {
	noLeaks(t)
	docker := &switchableDocker{status: map[string]string{"cid-1": "starting"}}
	set := backends.NewSet("app", backends.RoundRobin, backends.SetOptions{})
	t.Cleanup(set.Close)
	set.Update([]backends.Spec{{ID: "web-1", Address: "10.0.0.5:80", Container: "cid-1", Weight: 1}})
	b := set.Backend("web-1")
	m, err := NewMonitor(set, Config{Type: TypeDocker, Interval: 10 * time.Millisecond, Rise: 2, Fall: 2}, Options{Docker: docker})
	if err != nil {
		t.Fatal(err)
	}
	stop := runMonitor(t, m)
	defer stop()
	testkit.Eventually(t, 2*time.Second, "down as starting", func() bool {
		st, reason := b.State()
		return st == backends.StateDown && reason == "docker health of container cid-1: container health is starting"
	})
	docker.set("cid-1", "healthy")
	testkit.Eventually(t, 2*time.Second, "up once healthy", func() bool { return b.Up() })
	docker.set("cid-1", "unhealthy")
	testkit.Eventually(t, 2*time.Second, "down once unhealthy", func() bool {
		_, reason := b.State()
		return !b.Up() && reason == "failed 2 consecutive checks, last: docker health of container cid-1: container is unhealthy"
	})
}
