package docker

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"github.com/moby/moby/api/types/swarm"
)

// taskRow is the part of a Swarm task tierlb reads. A task's JSON is
// mostly its spec (the whole container spec, resources, placement, log
// driver), none of which tierlb needs: decoding into this instead of
// swarm.Task is what makes a poll of 10,000 tasks cheap.
type taskRow struct {
	ID           string
	Version      swarm.Version
	CreatedAt    time.Time
	ServiceID    string
	Slot         int
	NodeID       string
	Spec         taskRowSpec
	Status       taskRowStatus
	DesiredState swarm.TaskState
	// NetworksAttachments keeps the engine's spelling.
	NetworksAttachments []taskRowAttachment
}

type taskRowSpec struct {
	ContainerSpec *struct {
		Healthcheck *struct{ Test []string }
	}
}

type taskRowStatus struct {
	State           swarm.TaskState
	Err             string
	ContainerStatus *struct{ ContainerID string }
}

type taskRowAttachment struct {
	Network struct {
		ID   string
		Spec struct {
			Name    string
			Ingress bool
		}
	}
	Addresses []netip.Prefix
}

// rowOf trims a task the SDK decoded whole (an inspect's).
func rowOf(t swarm.Task) (*taskRow, error) {
	b, err := json.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("encode task: %w", err)
	}
	var r taskRow
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode task: %w", err)
	}
	return &r, nil
}
