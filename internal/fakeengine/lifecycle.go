package fakeengine

import (
	"fmt"
	"maps"
	"strconv"
	"time"

	"github.com/moby/moby/api/types/events"
)

// fakeImage is the image every container runs, as events and lists name it.
const fakeImage = "tierlb/replica:latest"

// Run creates and starts a container as `docker run -d` does, emitting
// create, network connect and start. The name must be new.
func (e *Engine) Run(name string, labels map[string]string) (Container, error) {
	e.mu.Lock()
	if _, ok := e.byName[name]; ok {
		e.mu.Unlock()
		return Container{}, fmt.Errorf("fake engine: container name %q is already in use", name)
	}
	c := &Container{
		ID:      containerID(name),
		Name:    name,
		Labels:  maps.Clone(labels),
		IP:      loopbackAddr(e.nextIP),
		Created: time.Now().UTC(),
	}
	e.nextIP++
	e.ctrs[c.ID], e.byName[name] = c, c.ID
	e.order = append(e.order, c.ID)
	e.mu.Unlock()
	e.emit(containerEvent(c, events.ActionCreate, nil))
	if err := e.Start(c.ID, false); err != nil {
		return Container{}, err
	}
	got, _ := e.Container(c.ID)
	return got, nil
}

// Start starts a stopped container: network connect, start, and restart
// too when it ends a `docker restart`.
func (e *Engine) Start(ref string, restart bool) error {
	e.mu.Lock()
	c := e.lookup(ref)
	if c == nil {
		e.mu.Unlock()
		return fmt.Errorf("fake engine: no such container: %s", ref)
	}
	if c.Running {
		e.mu.Unlock()
		return fmt.Errorf("fake engine: container %s is already running", c.Name)
	}
	c.Running, c.StartedAt, c.ExitCode = true, time.Now().UTC(), 0
	snap := *c
	e.mu.Unlock()
	e.emit(networkEvent(&snap, events.ActionConnect))
	e.emit(containerEvent(&snap, events.ActionStart, nil))
	if restart {
		e.emit(containerEvent(&snap, events.ActionRestart, nil))
	}
	return nil
}

// BeginStop is the start of `docker stop`: the kill event with SIGTERM,
// while the container still runs its grace period.
func (e *Engine) BeginStop(ref string) error {
	e.mu.Lock()
	c := e.lookup(ref)
	if c == nil || !c.Running {
		e.mu.Unlock()
		return fmt.Errorf("fake engine: container %s is not running", ref)
	}
	snap := *c
	e.mu.Unlock()
	e.emit(containerEvent(&snap, events.ActionKill, map[string]string{"signal": "15"}))
	return nil
}

// FinishStop is the end of `docker stop` (or of the stop half of `docker
// restart`): the process has exited, so die, network disconnect and stop.
func (e *Engine) FinishStop(ref string) error {
	e.mu.Lock()
	c := e.lookup(ref)
	if c == nil || !c.Running {
		e.mu.Unlock()
		return fmt.Errorf("fake engine: container %s is not running", ref)
	}
	c.Running, c.FinishedAt, c.ExitCode = false, time.Now().UTC(), 143
	snap := *c
	e.mu.Unlock()
	e.emit(containerEvent(&snap, events.ActionDie, map[string]string{"exitCode": strconv.Itoa(snap.ExitCode)}))
	e.emit(networkEvent(&snap, events.ActionDisconnect))
	e.emit(containerEvent(&snap, events.ActionStop, nil))
	return nil
}

// Remove deletes a stopped container (destroy), as `docker rm` does.
func (e *Engine) Remove(ref string) error {
	e.mu.Lock()
	c := e.lookup(ref)
	if c == nil || c.Running {
		e.mu.Unlock()
		return fmt.Errorf("fake engine: container %s does not exist or is running", ref)
	}
	delete(e.ctrs, c.ID)
	delete(e.byName, c.Name)
	for i, id := range e.order {
		if id == c.ID {
			e.order = append(e.order[:i], e.order[i+1:]...)
			break
		}
	}
	snap := *c
	e.mu.Unlock()
	e.emit(containerEvent(&snap, events.ActionDestroy, nil))
	return nil
}

// containerEvent is a container event as the daemon sends it: the actor's
// attributes are the labels, the image and the name, plus extra.
func containerEvent(c *Container, action events.Action, extra map[string]string) events.Message {
	attrs := make(map[string]string, len(c.Labels)+2+len(extra))
	maps.Copy(attrs, c.Labels)
	attrs["image"], attrs["name"] = fakeImage, c.Name
	maps.Copy(attrs, extra)
	return events.Message{Type: events.ContainerEventType, Action: action, Scope: "local",
		Actor: events.Actor{ID: c.ID, Attributes: attrs}}
}

// networkEvent is a network connect or disconnect: the actor is the
// network, the container is an attribute.
func networkEvent(c *Container, action events.Action) events.Message {
	return events.Message{Type: events.NetworkEventType, Action: action, Scope: "local",
		Actor: events.Actor{ID: networkID, Attributes: map[string]string{
			"container": c.ID, "name": NetworkName, "type": "bridge",
		}}}
}

// ConnectOverlay attaches a container to the Swarm overlay, as
// `docker network connect fakeoverlay` (or a stack) does, and emits the
// network's connect event.
func (e *Engine) ConnectOverlay(ref string) error {
	e.mu.Lock()
	c := e.lookup(ref)
	if c == nil || !e.opts.Swarm {
		e.mu.Unlock()
		return fmt.Errorf("fake engine: no such container %s, or no Swarm", ref)
	}
	c.Overlay = true
	e.mu.Unlock()
	e.emit(events.Message{Type: events.NetworkEventType, Action: events.ActionConnect, Scope: "local",
		Actor: events.Actor{ID: overlayID, Attributes: map[string]string{"container": c.ID, "name": OverlayName, "type": "overlay"}}})
	return nil
}
