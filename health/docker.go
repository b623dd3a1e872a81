package health

import (
	"context"
	"errors"
	"fmt"

	"github.com/moby/moby/client"

	"github.com/tierlb/tierlb/backends"
)

// ContainerHealth reports the status of a container's Docker HEALTHCHECK:
// "healthy", "starting", "unhealthy", or "none" (or "") when the image has
// no healthcheck. DockerInspect adapts the moby client to it.
type ContainerHealth interface {
	ContainerHealth(ctx context.Context, containerID string) (status string, err error)
}

// Reasons a container fails a docker check, for errors.Is.
var (
	ErrContainerStarting  = errors.New("container health is starting")
	ErrContainerUnhealthy = errors.New("container is unhealthy")
	ErrNoHealthcheck      = errors.New("container has no HEALTHCHECK")
	ErrNoContainer        = errors.New("backend is not a container")
)

// DockerChecker passes when the engine reports the backend's container as
// healthy. It is keyed by container, not address: the monitor calls
// CheckBackend with the backend's Spec.
type DockerChecker struct {
	Health ContainerHealth
}

// CheckBackend checks spec.Container; static backends have none and fail.
func (d DockerChecker) CheckBackend(ctx context.Context, spec backends.Spec) error {
	if spec.Container == "" {
		return fmt.Errorf("docker check of %s: %w", spec.ID, ErrNoContainer)
	}
	return d.Check(ctx, spec.Container)
}

// Check checks the container named by containerID (the Checker's target is
// a container here, not an address).
func (d DockerChecker) Check(ctx context.Context, containerID string) error {
	status, err := d.Health.ContainerHealth(ctx, containerID)
	if err != nil {
		return fmt.Errorf("docker health of container %s: %w", shortID(containerID), err)
	}
	var cause error
	switch status {
	case "healthy":
		return nil
	case "starting":
		cause = ErrContainerStarting
	case "unhealthy":
		cause = ErrContainerUnhealthy
	case "", "none":
		cause = ErrNoHealthcheck
	default:
		return fmt.Errorf("docker health of container %s: unknown status %q", shortID(containerID), status)
	}
	return fmt.Errorf("docker health of container %s: %w", shortID(containerID), cause)
}

// shortID shortens a container ID the way the docker CLI prints it.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// ContainerInspector is the part of the moby client DockerInspect needs;
// *client.Client implements it, and test fakes can embed it.
type ContainerInspector interface {
	ContainerInspect(ctx context.Context, containerID string, options client.ContainerInspectOptions) (client.ContainerInspectResult, error)
}

// DockerInspect reads HEALTHCHECK status by inspecting the container.
type DockerInspect struct {
	Client ContainerInspector
}

// ContainerHealth implements ContainerHealth.
func (d DockerInspect) ContainerHealth(ctx context.Context, containerID string) (string, error) {
	res, err := d.Client.ContainerInspect(ctx, containerID, client.ContainerInspectOptions{})
	if err != nil {
		return "", err
	}
	st := res.Container.State
	if st != nil && !st.Running {
		// A stopped container keeps its last health status; it is not healthy.
		return "", fmt.Errorf("container is %s", st.Status)
	}
	if st == nil || st.Health == nil {
		return "none", nil
	}
	return string(st.Health.Status), nil
}
